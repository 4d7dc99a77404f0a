r"""Fold a linear chain of convolutions and pixel shuffles into one sub-pixel convolution, exactly.

The DAN upsampler (x4: conv 64->256, PixelShuffle(2), conv 64->256, PixelShuffle(2), conv 64->3) has no
non-linearity, so it is one affine, shift-invariant-per-phase operator. For an output cell ``Y`` (the
``s x s`` output pixels above input pixel ``Y``) it reads the inputs ``Y - R .. Y + R`` only:

$$
\mathrm{chain}(x) = \mathrm{PS}_s\big(W_f * x + b_f\big)
$$

with $W_f$ of shape ``(out_nc * s², in_nc, 2R+1, 2R+1)`` and $\mathrm{PS}_s$ PixelShuffle(s).
At x4 that is a 5x5 conv 64->48 at the LR size (0.63 GFLOP at 64x64) in place of 6.3 GFLOP, most of it at
the HR size. The identity holds wherever no intermediate map's zero padding is reached, i.e. for output cells
at least ``R`` cells from every border; `folded_forward()` corrects the
border bands exactly (see there), so the result equals the chain everywhere up to float rounding.

`fold_subpixel_chain()` computes $W_f, b_f$ in float64 (one batched backward pass through the
chain: row ``j`` of $W_f$ is the gradient of output ``j`` of the centre cell);
`folded_forward()` applies them. Functional and device/dtype-agnostic;
`Upsampler` caches the fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FoldedChain", "chain_geometry", "fold_subpixel_chain"]


@dataclass(frozen=True)
class FoldedChain:
    """One sub-pixel conv equal to a chain: ``pixel_shuffle(conv2d(x, weight, bias, padding=radius), scale)``.

    Attributes:
        weight: (out_nc * scale², in_nc, 2 radius + 1, 2 radius + 1).
        bias: (out_nc * scale²,).
        scale: total upscaling factor of the chain.
        radius: receptive radius of one output cell, in input pixels.
    """

    weight: Tensor
    bias: Tensor
    scale: int
    radius: int
    #: the linear folds (bias unused) of the chain from its 2nd, 3rd, ... conv to the end: they carry the
    #: exterior values of each intermediate map to the output, which the border correction subtracts
    suffixes: tuple[FoldedChain, ...] = ()


def _check_layers(layers: Sequence[nn.Module]) -> None:
    if not layers or not isinstance(layers[-1], nn.Conv2d):
        raise ValueError("fold_subpixel_chain needs a non-empty chain that ends with an nn.Conv2d")
    for layer in layers:
        if isinstance(layer, nn.PixelShuffle):
            continue
        if not isinstance(layer, nn.Conv2d):
            raise TypeError(f"fold_subpixel_chain: only nn.Conv2d and nn.PixelShuffle can be folded, got {layer}")
        kh, kw = layer.kernel_size
        if (
            kh != kw
            or kh % 2 == 0
            or layer.stride != (1, 1)
            or layer.dilation != (1, 1)
            or layer.groups != 1
            or layer.padding != (kh // 2, kw // 2)
            or layer.padding_mode != "zeros"
        ):
            raise ValueError(
                f"fold_subpixel_chain: convs must be odd square 'same' convs (stride 1, zero padding k//2, "
                f"no dilation or groups), got {layer}"
            )


def chain_geometry(layers: Sequence[nn.Module]) -> tuple[int, int]:
    """``(scale, radius)`` of a conv/pixel-shuffle chain: its total upscaling and, for one output cell, how
    many input pixels on each side it reads (interval propagation from the output back to the input)."""
    _check_layers(layers)
    scale = 1
    for layer in layers:
        if isinstance(layer, nn.PixelShuffle):
            scale *= int(layer.upscale_factor)
    lo, hi = 0, scale - 1  # the output pixels of cell 0, at the output resolution
    for layer in reversed(layers):
        if isinstance(layer, nn.PixelShuffle):
            factor = int(layer.upscale_factor)
            lo, hi = lo // factor, hi // factor
        else:
            reach = cast(nn.Conv2d, layer).kernel_size[0] // 2  # _check_layers: every other layer is a conv
            lo, hi = lo - reach, hi + reach
    return scale, max(-lo, hi)


def _run(layers: Sequence[nn.Module], x: Tensor, with_bias: bool) -> Tensor:
    for layer in layers:
        if isinstance(layer, nn.PixelShuffle):
            x = F.pixel_shuffle(x, layer.upscale_factor)
        else:
            assert isinstance(layer, nn.Conv2d)
            bias = layer.bias.to(x) if with_bias and layer.bias is not None else None
            x = F.conv2d(x, layer.weight.to(x), bias, 1, layer.padding)
    return x


def fold_subpixel_chain(
    layers: Sequence[nn.Module], dtype: torch.dtype | None = None, suffixes: bool = True
) -> FoldedChain:
    """The `FoldedChain` of ``layers`` (convs and pixel shuffles, ending with a conv).

    Computed in float64 on the layers' device, returned in ``dtype`` (default: the first conv's dtype) and in the
    first conv's weight's memory format (channels_last weights give a channels_last fold).
    Raises ``TypeError``/``ValueError`` naming the layer that cannot be folded (a non-linearity, a strided
    or grouped conv, non-zero padding).
    """
    scale, radius = chain_geometry(layers)
    first = next(layer for layer in layers if isinstance(layer, nn.Conv2d))
    last = layers[-1]
    assert isinstance(last, nn.Conv2d)
    in_nc, out_nc = first.in_channels, last.out_channels
    size, width = 2 * radius + 1, out_nc * scale * scale
    device = first.weight.device
    centre = slice(radius * scale, (radius + 1) * scale)
    with torch.inference_mode(False), torch.enable_grad():  # works under no_grad and inference_mode too
        probe = torch.zeros(width, in_nc, size, size, dtype=torch.float64, device=device, requires_grad=True)
        out = _run(layers, probe, with_bias=False)[:, :, centre, centre].reshape(width, width)
        (grad,) = torch.autograd.grad(out.diagonal().sum(), probe)
    with torch.inference_mode(False), torch.no_grad():
        zeros = torch.zeros(1, in_nc, size, size, dtype=torch.float64, device=device)
        bias = _run(layers, zeros, with_bias=True)[0, :, centre, centre].reshape(width)
    dtype = first.weight.dtype if dtype is None else dtype
    tails: tuple[FoldedChain, ...] = ()
    if suffixes:
        convs = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d)]
        tails = tuple(fold_subpixel_chain(layers[i:], dtype, suffixes=False) for i in convs[1:])
    weight = grad.to(dtype)
    if not first.weight.is_contiguous() and first.weight.is_contiguous(memory_format=torch.channels_last):
        weight = weight.contiguous(memory_format=torch.channels_last)
    return FoldedChain(weight, bias.to(dtype), scale, radius, tails)
