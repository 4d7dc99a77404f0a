"""The code-as-bias CRB: DAN v1's block without building the stretched code."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers import CRB, stretch_code
from .capture import is_capturing
from .fused import fused_conv_leaky_relu

__all__ = ["FastCRB", "conv_with_constant_channels"]


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


class FastCRB(CRB):
    """`CRB` computed without the stretch-and-concatenate (same parameters, same numbers).

    A global code (B, C) or (B, C, 1, 1) enters the first conv as a per-channel bias with exact borders
    (`conv_with_constant_channels()`); a spatial code map is concatenated as in the paper, with the
    LeakyReLU fused into the conv for CPU inference; the update is one ``addcmul``. Made by
    `dan_blocks.optimize()`; equal to the plain block up to float rounding (tested <= 1e-5 relative).
    """

    def residual(self, feat: Tensor, cond: Tensor) -> Tensor:
        r"""The branch before channel attention, $W_2 * \delta(W_1 * [f, S(c)])$, shape (B, nf, H, W)."""
        first = self.body[0]
        is_global = cond.dim() == 2 or (cond.shape[-2] == 1 and cond.shape[-1] == 1)
        if is_global and not is_capturing():  # traced graphs keep the size-generic concatenation
            hidden = conv_with_constant_channels(feat, first, cond.reshape(cond.shape[0], self.cond_nf))
            return self.body[2](F.leaky_relu(hidden, self.negative_slope, inplace=not torch.is_grad_enabled()))
        stretched = stretch_code(cond, (feat.shape[-2], feat.shape[-1]), self.stretch_mode)
        joined = torch.cat((feat, stretched), dim=1)
        return self.body[2](fused_conv_leaky_relu(joined, first, self.negative_slope))

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        self.check_inputs(feat, cond)
        res = self.residual(feat, cond)
        return torch.addcmul(feat, res, _attention(self.body[3], res)), cond


def _attention(ca: nn.Module, x: Tensor) -> Tensor:
    """`ChannelAttention.attention` with its 1x1 convs on the pooled (B, C, 1, 1) map as matrix products (no
    im2col for one pixel); the plain call under graph capture. Shape: (B, C, H, W) -> (B, C, 1, 1)."""
    first, act, last = ca.body[0], ca.body[1], ca.body[2]
    if is_capturing() or not isinstance(first, nn.Conv2d) or not isinstance(act, nn.LeakyReLU):
        return ca.attention(x)  # type: ignore[no-any-return]
    pooled = x.mean(dim=(2, 3))
    hidden = F.leaky_relu(F.linear(pooled, first.weight.flatten(1), first.bias), act.negative_slope)
    return torch.sigmoid(F.linear(hidden, last.weight.flatten(1), last.bias))[:, :, None, None]
