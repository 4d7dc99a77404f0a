"""Tiling primitives: run a purely local function tile by tile with a halo, or sum its output over tiles.

Tiles live on a reference grid (the LR image, size ``(h, w)``). Every tensor handed to a tiled function has
an integer ``factor`` relative to that grid (1 for LR-resolution maps, ``s`` for SR images), so a tile
``[y0, y1) x [x0, x1)`` of the grid is ``[f y0, f y1) x [f x0, f x1)`` of a tensor with factor ``f``.

Exactness: a function whose output at a pixel depends only on inputs within ``halo`` grid pixels (a stack of
stride-1 convolutions with zero padding, point-wise ops, pixel shuffles) gives, on the tile grown by ``halo``
(clipped at the image border, where the function's own zero padding then equals the whole image's), the same
values in the tile's interior as on the whole image. Cropping the interiors and pasting them back (or summing
them, for a global average pooling) reproduces the untiled result up to floating-point summation order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["Tile", "conv_radius", "iter_tiles", "map_tiles", "sum_tiles"]


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
    if tile_size < 1:
        raise ValueError(f"tile_size must be >= 1, got {tile_size}")
    if halo < 0:
        raise ValueError(f"halo must be >= 0, got {halo}")
    height, width = size
    top, bottom, left, right = (0, height, 0, width) if region is None else region
    for y0, y1 in _starts(top, bottom, tile_size):
        for x0, x1 in _starts(left, right, tile_size):
            yield Tile(
                y0, y1, x0, x1, max(0, y0 - halo), min(height, y1 + halo), max(0, x0 - halo), min(width, x1 + halo)
            )


def map_tiles(
    fn: Callable[..., Tensor],
    inputs: Sequence[tuple[Tensor, int]],
    size: tuple[int, int],
    tile_size: int,
    halo: int,
    out_factor: int = 1,
    out: Tensor | None = None,
    device: torch.device | None = None,
    out_device: torch.device | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Tensor:
    """Run the local function ``fn`` tile by tile and paste the interiors into one whole-image tensor.

    Args:
        fn: called as ``fn(*tiles)`` with the extended tile of every input; returns (B, C, f H_t, f W_t) for
            an extended tile of H_t x W_t grid pixels and ``f = out_factor``.
        inputs: ``(tensor, factor)`` pairs, tensors (B, *, factor h, factor w).
        size: the grid ``(h, w)``.
        tile_size: interior side in grid pixels.
        halo: grid pixels added on every side (>= ``fn``'s receptive radius in grid pixels).
        out_factor: resolution of ``fn``'s output relative to the grid.
        out: a preallocated (B, C, f h, f w) result (else allocated on the first tile).
        device: where ``fn`` runs (tiles are moved there; default: the first input's device).
        out_device: where a newly allocated result lives (default ``device``).
        memory_format: of a newly allocated result (``torch.channels_last`` for channels-last models).

    Returns:
        (B, C, f h, f w) on ``out_device``.
    """
    device = inputs[0][0].device if device is None else device
    for tile in iter_tiles(size, tile_size, halo):
        result = tile.interior(fn(*(tile.crop(x, f).to(device) for x, f in inputs)), out_factor)
        if out is None:
            batch, channels = result.shape[:2]
            out = torch.empty(
                (batch, channels, out_factor * size[0], out_factor * size[1]),
                dtype=result.dtype,
                device=device if out_device is None else out_device,
                memory_format=memory_format,
            )
        tile.place(out, out_factor).copy_(result)
    assert out is not None
    return out


def sum_tiles(
    fn: Callable[..., Tensor],
    inputs: Sequence[tuple[Tensor, int]],
    size: tuple[int, int],
    tile_size: int,
    halo: int,
    device: torch.device | None = None,
) -> Tensor:
    """Spatial sum (B, C) of the local function ``fn``'s LR-resolution output over the whole grid, in float32,
    computed tile by tile (sum of the interiors); divide by ``h * w`` for a global average pooling."""
    device = inputs[0][0].device if device is None else device
    total: Tensor | None = None
    for tile in iter_tiles(size, tile_size, halo):
        part = tile.interior(fn(*(tile.crop(x, f).to(device) for x, f in inputs))).float().sum(dim=(2, 3))
        total = part if total is None else total + part
    assert total is not None
    return total


def conv_radius(modules: nn.Module | Iterable[nn.Module], factor: int = 1) -> int:
    """Receptive radius in grid pixels of modules applied in registration order (a chain).

    Stride-1 ``Conv2d`` add ``dilation * (k - 1) / 2`` pixels at the current resolution, ``PixelShuffle(r)``
    multiplies the resolution by ``r``; ``factor`` is the starting resolution. Parallel branches are counted
    as if chained (an over-estimate, which keeps tiling exact and only costs time).

    Raises:
        ValueError: a strided convolution (its alignment needs care: handle it explicitly).
    """
    items = [modules] if isinstance(modules, nn.Module) else list(modules)
    radius, resolution = 0.0, float(factor)
    for item in items:
        for module in item.modules():
            if isinstance(module, nn.Conv2d):
                if module.stride != (1, 1):
                    raise ValueError(f"conv_radius: strided convolution {module} needs explicit handling")
                reach = max(d * (k - 1) / 2 for d, k in zip(module.dilation, module.kernel_size, strict=True))
                radius += reach / resolution
            elif isinstance(module, nn.PixelShuffle):
                resolution *= module.upscale_factor
    return math.ceil(radius - 1e-9)
