r"""Apply a `FoldedChain` with the chain's exact borders.

The folded conv equals the chain only where no intermediate zero padding is reached. Write $z_j$ for
the input of the chain's conv $j$ (chain world: each conv zero-pads its input, i.e. reads
$\mathrm{crop}(z_j)$), $\mathrm{ext}(z_j) = z_j - \mathrm{crop}(z_j)$ for its values outside the
image (what the previous conv gives there) and $S_j$ for the linear chain from conv $j$ to the
end, without padding or bias (itself a fold, ``FoldedChain.suffixes``). By induction over the convs,

$$
\mathrm{chain}(x) = \mathrm{fold}(x) - \mathrm{crop}\Big(\sum_{j \ge 1} S_j\big(\mathrm{ext}(z_j)\big)\Big)
$$

$\mathrm{ext}(z_j)$ is only needed within $S_j$'s radius of the image, and it depends only on the
first rows of $\mathrm{crop}(z_{j-1})$ (as many as the previous conv reaches), which the chain gives
exactly when it runs on a thin strip along the border (`border_band()`). So each border costs a few rows
of each conv instead of a band of the whole chain. The exterior rings along the top and bottom include the
corners; those along the left and right sides stop at the image's rows, so every exterior pixel counts once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .subpixel_fold import FoldedChain

__all__ = ["band_depths", "border_band", "folded_forward"]

_SIDES = ((2, False), (2, True), (3, False), (3, True))


def band_depths(layers: Sequence[nn.Module], band: int) -> list[int]:
    """Rows (or columns) of each layer's input that the outer ``band`` output rows depend on, next to a
    border: a conv of reach r needs r more, a pixel shuffle by f needs ceil(n / f) of its input."""
    depths: list[int] = []
    n = band
    for layer in reversed(layers):
        if isinstance(layer, nn.PixelShuffle):
            n = -(-n // int(layer.upscale_factor))
        else:
            n += cast(nn.Conv2d, layer).kernel_size[0] // 2  # a chain of convs and pixel shuffles
        depths.append(n)
    return depths[::-1]


def border_band(layers: Sequence[nn.Module], x: Tensor, band: int, dim: int, end: bool) -> Tensor:
    """The chain's outer ``band`` rows (``dim=2``) or columns (``dim=3``) at the start or the end of ``x``,
    exactly: every layer runs on just the rows it needs, so the border's zero padding is the real one and the
    rows next to the strip's inner (artificial) edge are cut before they are used. Full extent along the
    other dimension."""
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    for layer, depth in zip(layers, band_depths(layers, band), strict=True):
        size = x.shape[dim]
        x = layer(x.narrow(dim, size - depth if end else 0, depth).contiguous(memory_format=fmt))
    size = x.shape[dim]
    return x.narrow(dim, size - band if end else 0, band)


def _pad(dim: int, end: bool, outer: int, inner: int, across: int) -> tuple[int, int, int, int]:
    """``F.pad`` sizes: ``outer`` beyond the border, ``inner`` towards the image along ``dim``; ``across`` on
    both sides of the other dimension."""
    before, after = (inner, outer) if end else (outer, inner)
    return (across, across, before, after) if dim == 2 else (before, after, across, across)


def _ring_correction(
    layers: Sequence[nn.Module], x: Tensor, prev: int, cur: int, suffix: FoldedChain, dim: int, end: bool
) -> Tensor:
    """$S_j(\\mathrm{ext}(z_j))$ on the band along one border, for conv ``cur`` (layer index) whose
    previous conv is layer ``prev``; shape of the output band: (B, out_nc, R s, W s) or (B, out_nc, H s, R s)."""
    conv = layers[prev]
    assert isinstance(conv, nn.Conv2d)
    reach = conv.kernel_size[0] // 2
    factors = [int(cast(nn.PixelShuffle, layer).upscale_factor) for layer in layers[prev + 1 : cur]]
    factor = math.prod(factors)
    radius = suffix.radius
    rows = -(-radius // factor)  # exterior rows of the previous conv's output that reach S_j's radius
    first = border_band(layers[:prev], x, reach, dim, end)  # exact crop(z_{j-1}) next to the border (x if prev=0)
    across = rows + reach if dim == 2 else reach
    ring = F.conv2d(F.pad(first, _pad(dim, end, rows + reach, 0, across)), conv.weight, conv.bias)
    for f in factors:
        ring = F.pixel_shuffle(ring, f)
    depth = rows * factor  # exterior rows of z_j computed; keep the `radius` next to the image
    ring = ring.narrow(dim, 0 if end else depth - radius, radius)
    if dim == 2:  # top/bottom rings span the corners: columns -R .. W + R
        ring = ring.narrow(3, depth - radius, ring.shape[3] - 2 * (depth - radius))
    ring = F.pad(ring, _pad(dim, end, 0, 2 * radius, 0 if dim == 2 else radius))
    out = F.conv2d(ring, suffix.weight)
    return F.pixel_shuffle(out, suffix.scale) if suffix.scale > 1 else out


def folded_forward(x: Tensor, folded: FoldedChain, layers: Sequence[nn.Module]) -> Tensor:
    """The chain ``layers`` applied to ``x``: the folded sub-pixel conv, then the exact border correction.

    ``layers`` must be the chain that was folded (with its suffix folds, as `fold_subpixel_chain()` gives
    by default). Inputs smaller than ``4R`` pixels on a side go through the chain whole.

    Shape: (B, in_nc, H, W) -> (B, out_nc, s H, s W).
    """
    r, s = folded.radius, folded.scale
    height, width = x.shape[-2:]
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d)]
    if len(folded.suffixes) != len(convs) - 1:
        raise ValueError(
            f"folded_forward: the fold has {len(folded.suffixes)} suffix folds, the chain needs "
            f"{len(convs) - 1} (fold it with fold_subpixel_chain(layers) and pass the same layers)"
        )
    if r == 0:  # 1x1 convs only: no padding is ever read
        return F.pixel_shuffle(F.conv2d(x, folded.weight, folded.bias), s)
    if min(height, width) < 4 * r:
        for layer in layers:
            x = layer(x)
        return x
    out = F.pixel_shuffle(F.conv2d(x, folded.weight, folded.bias, 1, r), s)
    for prev, cur, suffix in zip(convs[:-1], convs[1:], folded.suffixes, strict=True):
        band = suffix.radius * suffix.scale
        for dim, end in _SIDES:
            size = out.shape[dim]
            out.narrow(dim, size - band if end else 0, band).sub_(
                _ring_correction(layers, x, prev, cur, suffix, dim, end)
            )
    return out
