"""A convolution of features concatenated with a code that is constant in space, without building the
concatenation (the fast form of DAN v1's stretch-and-concat)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["can_use_constant_channels", "conv_with_constant_channels"]


def can_use_constant_channels(conv: nn.Module) -> bool:
    """Whether `conv_with_constant_channels` applies to ``conv``: an ``nn.Conv2d`` with an odd square kernel,
    stride 1, dilation 1, groups 1 and zero padding ``k // 2``."""
    if type(conv) is not nn.Conv2d:
        return False
    ksize = conv.kernel_size[0]
    return (
        conv.kernel_size == (ksize, ksize)
        and ksize % 2 == 1
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding == (ksize // 2, ksize // 2)
        and conv.padding_mode == "zeros"
    )


def _valid_taps(positions: Tensor, size: int, ksize: int, pad: int) -> Tensor:
    """(len(positions), ksize) 0/1 mask: tap ``t`` at output position ``i`` reads input ``i + t - pad``
    inside [0, size) (else it reads the zero padding)."""
    src = positions[:, None] + torch.arange(ksize, device=positions.device)[None, :] - pad
    return ((src >= 0) & (src < size)).to(torch.float32)


@functools.lru_cache(maxsize=64)
def _band_masks(
    height: int, width: int, ksize: int, pad: int, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    """(ry (2p, k), rx_all (W, k), rx_band (2p, k)): the valid-tap masks of the border bands, per map size
    (cached: the same for every CRB of a model; read-only)."""
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    band_rows = torch.cat((rows[:pad], rows[height - pad :]))
    band_cols = torch.cat((cols[:pad], cols[width - pad :]))
    return (
        _valid_taps(band_rows, height, ksize, pad).to(dtype),
        _valid_taps(cols, width, ksize, pad).to(dtype),
        _valid_taps(band_cols, width, ksize, pad).to(dtype),
    )


def conv_with_constant_channels(feat: Tensor, conv: nn.Conv2d, const: Tensor) -> Tensor:
    r"""``conv(cat([feat, const stretched to feat's size]))`` without building the concatenation.

    With the weight split as $W = [W_f, W_c]$ along the input channels and a code $c$ constant in
    space, the code's share of the output is $T_{o,u,v} = \sum_i W_c[o,i,u,v]\,c_i$ summed over the taps
    that fall inside the image (zero padding):

    $$
    \mathrm{conv}([f, S(c)])_{o,y,x} = (W_f * f)_{o,y,x} + b_o + \sum_{u,v} T_{o,u,v}\,
    r_y(u)\,r_x(v)
    $$

    with $r_y(u) = 1$ when row $y + u - p$ lies in the image. In the interior this is the constant
    $\sum_{u,v} T_{o,u,v}$ (added as a per-channel bias); only the ``p = k // 2`` wide border bands
    need the exact partial sums, which are subtracted there. Nothing of size (B, C, H, W) is built for the
    code. Requires stride 1, dilation 1, groups 1, symmetric zero padding ``k // 2`` (the CRB's conv).

    Shape:
        feat: (B, F, H, W); const: (B, C) with F + C = conv.in_channels -> (B, conv.out_channels, H, W)
    """
    nf = feat.shape[1]
    ksize = conv.kernel_size[0]
    pad = ksize // 2
    if (
        conv.kernel_size != (ksize, ksize)
        or ksize % 2 == 0
        or conv.stride != (1, 1)
        or conv.dilation != (1, 1)
        or conv.groups != 1
        or conv.padding != (pad, pad)
        or conv.padding_mode != "zeros"
    ):
        raise ValueError(
            "conv_with_constant_channels needs an odd square kernel, stride 1, dilation 1, groups 1 and zero "
            f"padding k // 2, got {conv}"
        )
    if feat.dim() != 4 or const.dim() != 2 or const.shape[0] != feat.shape[0] or nf + const.shape[1] != (
        conv.in_channels
    ):
        raise ValueError(
            f"conv_with_constant_channels: features (B, F, H, W) and code (B, C) with F + C = "
            f"{conv.in_channels}, got {tuple(feat.shape)} and {tuple(const.shape)}"
        )
    weight = conv.weight
    w_feat, w_code = weight[:, :nf], weight[:, nf:]
    taps = torch.einsum("oiuv,bi->bouv", w_code, const.to(weight.dtype))  # (B, O, k, k)
    interior = taps.sum(dim=(2, 3))  # (B, O)
    batch, height, width = feat.shape[0], feat.shape[-2], feat.shape[-1]
    bias = conv.bias
    if batch == 1:
        total = interior[0] if bias is None else bias + interior[0]
        out = F.conv2d(feat, w_feat, total, 1, pad)
    else:
        out = F.conv2d(feat, w_feat, bias, 1, pad) + interior[:, :, None, None]
    if pad == 0:
        return out
    if height <= 2 * pad or width <= 2 * pad:  # tiny map: every pixel is a border pixel
        rows = torch.arange(height, device=feat.device)
        cols = torch.arange(width, device=feat.device)
        exact = torch.einsum(
            "bouv,yu,xv->boyx", taps, _valid_taps(rows, height, ksize, pad).to(taps),
            _valid_taps(cols, width, ksize, pad).to(taps),
        )
        return out - interior[:, :, None, None] + exact
    ry, rx_all, rx_band = _band_masks(height, width, ksize, pad, feat.device, taps.dtype)
    # top and bottom bands, full width: (B, O, 2p, W)
    missing_rows = interior[:, :, None, None] - torch.einsum("bouv,yu,xv->boyx", taps, ry, rx_all)
    # left and right bands between them (every row tap valid there): (B, O, 2p)
    missing_cols = interior[:, :, None] - torch.einsum("bov,xv->box", taps.sum(dim=2), rx_band)
    out[:, :, :pad, :] -= missing_rows[:, :, :pad]
    out[:, :, height - pad:, :] -= missing_rows[:, :, pad:]
    out[:, :, pad:height - pad, :pad] -= missing_cols[:, :, None, :pad]
    out[:, :, pad:height - pad, width - pad:] -= missing_cols[:, :, None, pad:]
    return out
