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


def iter_tiles(
    size: tuple[int, int], tile_size: int, halo: int, region: tuple[int, int, int, int] | None = None
) -> Iterator[Tile]:
    """Row-major tiles of a ``size = (h, w)`` grid; interiors of ``tile_size`` (smaller at the far edges)
    grown by ``halo`` on every side, clipped to the grid.

    ``region = (y0, y1, x0, x1)`` tiles only that rectangle (the halos still reach outside it, clipped to the
    grid), e.g. to sub-tile one tile's interior.
    """
    tile_size = check_size("iter_tiles", "tile_size", tile_size)  # type: ignore[assignment]
    halo = check_size("iter_tiles", "halo", halo, minimum=0)  # type: ignore[assignment]
    height, width = size
    top, bottom, left, right = (0, height, 0, width) if region is None else region
    for y0, y1 in _starts(top, bottom, tile_size):
        for x0, x1 in _starts(left, right, tile_size):
            yield Tile(
                y0, y1, x0, x1, max(0, y0 - halo), min(height, y1 + halo), max(0, x0 - halo), min(width, x1 + halo)
            )
