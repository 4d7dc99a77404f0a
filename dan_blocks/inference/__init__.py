"""Inference on real images: exact tiled upscaling (:func:`upscale`) and image/kernel I/O for ``dan-blocks sr``."""

from __future__ import annotations

from .tiled_dan import TiledDAN, supports_tiling, upscale
from .tiling import Tile, conv_radius, iter_tiles, map_tiles, sum_tiles

__all__ = ["Tile", "TiledDAN", "conv_radius", "iter_tiles", "map_tiles", "sum_tiles", "supports_tiling", "upscale"]
