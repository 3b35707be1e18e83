"""``python -m samesky``: the ``samesky`` command (``samesky.cli``)."""
import sys

from .cli import main

sys.exit(main())
