"""Tiling primitives: the tiles of a grid, with halos, and the crops and pastes between tiles and whole maps.

Tiles live on a reference grid (the LR image, size ``(h, w)``). Every tensor handed to a tiled function has
an integer ``factor`` relative to that grid (1 for LR-resolution maps, ``s`` for SR images), so a tile
``[y0, y1) x [x0, x1)`` of the grid is ``[f y0, f y1) x [f x0, f x1)`` of a tensor with factor ``f``.

Exactness: a function whose output at a pixel depends only on inputs within ``halo`` grid pixels (a stack of
stride-1 convolutions with zero padding, point-wise ops, pixel shuffles) gives, on the tile grown by ``halo``
(clipped at the image border, where the function's own zero padding then equals the whole image's), the same
values in the tile's interior as on the whole image. Cropping the interiors and pasting them back reproduces
the untiled result up to floating-point summation order (`dan_blocks.inference.tiled`).
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch import Tensor

__all__ = ["Tile", "TileSizeError", "check_size", "iter_tiles"]


class TileSizeError(TypeError, ValueError):
    """A tile size, halo or radius that is not an integer in range: a `TypeError` (``2.5``, ``True``, ``"8"``)
    or a `ValueError` (``0``), catchable as either."""


def check_size(where: str, name: str, value: Any, *, minimum: int = 1, allow_none: bool = False) -> int | None:
    """``value`` as an int when it is an integer (Python or NumPy, not a bool) ``>= minimum``, or None when
    ``allow_none``; else `TileSizeError` naming ``where``, ``name`` and what is expected."""
    if value is None and allow_none:
        return None
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum:
        expected = f"an integer >= {minimum}{' or None' if allow_none else ''}"
        raise TileSizeError(f"{where}: {name} must be {expected}, got {value!r}")
    return int(number)


@dataclass(frozen=True)
class Tile:
    """A tile of the reference grid: interior ``[y0, y1) x [x0, x1)``, extended (halo) ``[ey0, ey1) x [ex0, ex1)``."""

    y0: int
    y1: int
    x0: int
    x1: int
    ey0: int
    ey1: int
    ex0: int
    ex1: int

    def crop(self, x: Tensor, factor: int = 1) -> Tensor:
        """The extended tile of ``x`` (a tensor at ``factor`` times the grid's resolution), as a view."""
        return x[..., factor * self.ey0 : factor * self.ey1, factor * self.ex0 : factor * self.ex1]

    def interior(self, y: Tensor, factor: int = 1) -> Tensor:
        """The interior of ``y``, a function's output on the extended tile at ``factor`` x resolution."""
        oy, ox = factor * (self.y0 - self.ey0), factor * (self.x0 - self.ex0)
        return y[..., oy : oy + factor * (self.y1 - self.y0), ox : ox + factor * (self.x1 - self.x0)]

    def place(self, out: Tensor, factor: int = 1) -> Tensor:
        """The interior's region of a whole-image tensor ``out`` at ``factor`` x resolution, as a view."""
        return out[..., factor * self.y0 : factor * self.y1, factor * self.x0 : factor * self.x1]


def _starts(start: int, stop: int, tile: int) -> list[tuple[int, int]]:
    return [(a, min(a + tile, stop)) for a in range(start, stop, tile)]


def _extent(start: int, stop: int, halo: int, length: int, side: int | None, multiple: int) -> tuple[int, int]:
    """The extended range of interior ``[start, stop)``: grown by ``halo`` and clipped to ``[0, length)``; with
    ``side``, slid inwards (never past the grid) to ``side`` pixels when the clipping made it shorter, its start
    kept on a multiple of ``multiple``."""
    low, high = max(0, start - halo), min(length, stop + halo)
    if side is not None and high - low < side:
        wanted = max(0, high - side)
        if wanted < low:  # on a multiple: rounded up when that keeps the halo, else down
            up = -(-wanted // multiple) * multiple
            low = up if up <= low else wanted // multiple * multiple
        high = min(length, max(high, low + side))
    return low, high


def iter_tiles(
    size: tuple[int, int],
    tile_size: int,
    halo: int,
    region: tuple[int, int, int, int] | None = None,
    *,
    uniform: bool = False,
    multiple: int = 1,
) -> Iterator[Tile]:
    """Row-major tiles of a ``size = (h, w)`` grid; interiors of ``tile_size`` (smaller at the far edges)
    grown by ``halo`` on every side, clipped to the grid.

    ``region = (y0, y1, x0, x1)`` tiles only that rectangle (the halos still reach outside it, clipped to the
    grid), e.g. to sub-tile one tile's interior.

    ``uniform=True``: every extended tile has the same size, ``tile_size + 2 halo`` (or the grid's side when
    smaller): a tile whose extent the border clipped (or whose interior is short, at the far edge) takes more
    context from inside the grid instead. Still exact (the interior keeps at least ``halo`` pixels of context on
    every side that is not the border), and a model then sees one tile shape, so its kernels are planned once
    (oneDNN, cuDNN). ``multiple``: extended starts stay on multiples of it (a module that downsamples inside).
    """
    tile_size = check_size("iter_tiles", "tile_size", tile_size)  # type: ignore[assignment]
    halo = check_size("iter_tiles", "halo", halo, minimum=0)  # type: ignore[assignment]
    multiple = check_size("iter_tiles", "multiple", multiple)  # type: ignore[assignment]
    height, width = size
    top, bottom, left, right = (0, height, 0, width) if region is None else region
    side_y = min(height, tile_size + 2 * halo) if uniform else None
    side_x = min(width, tile_size + 2 * halo) if uniform else None
    for y0, y1 in _starts(top, bottom, tile_size):
        ey0, ey1 = _extent(y0, y1, halo, height, side_y, multiple)
        for x0, x1 in _starts(left, right, tile_size):
            ex0, ex1 = _extent(x0, x1, halo, width, side_x, multiple)
            yield Tile(y0, y1, x0, x1, ey0, ey1, ex0, ex1)
