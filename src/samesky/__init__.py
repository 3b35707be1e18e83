"""samesky: do foundation models see the same sky?

``samesky.compare(a, b, metrics=..., k=...)`` scores any two embeddings (arrays, data frames or
files; ``samesky.api``); the ``samesky`` command does the same from a shell (``samesky.cli``).
Importing the package stays light: the workflow imports it when it parses the Snakefile.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "compare":  # imported on first use (pandas, torch)
        from .api import compare

        return compare
    raise AttributeError(f"module 'samesky' has no attribute {name!r}")
