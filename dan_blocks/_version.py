"""The package version, in one place (read by ``dan_blocks.__version__`` and written into model files)."""

__all__ = ["__version__"]

__version__ = "0.1.0.dev0"
