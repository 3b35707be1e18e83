"""samesky: do foundation models see the same sky?"""

__version__ = "0.1.0"
