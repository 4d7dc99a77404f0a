"""The ``dan-blocks`` command line (``python -m dan_blocks`` works too)."""

from .main import main

__all__ = ["main"]
