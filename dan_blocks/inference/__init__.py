"""Inference: `upscale()` (tensors) and `upscale_image()` (a path, PIL image or array; the pipeline of
``dan-blocks sr``) (after `dan_blocks.optimize()`, optionally tiled exactly) and the tiling
protocol (`dan_blocks.inference.tiled`). Image files for ``dan-blocks sr``: `dan_blocks.data.sr_io`."""

from __future__ import annotations

from .image import upscale_image
from .loading import load_model
from .tiled import TiledModule, local_radius, tiled
from .tiling import Tile, iter_tiles
from .upscale import supports_tiling, upscale

__all__ = [
    "Tile",
    "TiledModule",
    "iter_tiles",
    "load_model",
    "local_radius",
    "supports_tiling",
    "tiled",
    "upscale",
    "upscale_image",
]
