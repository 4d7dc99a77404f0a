"""Conditional Residual Block (CRB), DAN v1's building block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .capture import is_capturing as _capturing
from .channel_attention import ChannelAttention
from .dpcb import fused_conv_leaky_relu
from .kernel_stretch import stretch_code

__all__ = ["CRB", "conv_with_constant_channels"]


def _valid_taps(positions: Tensor, size: int, ksize: int, pad: int) -> Tensor:
    """(len(positions), ksize) 0/1 mask: tap ``t`` at output position ``i`` reads input ``i + t - pad``
    inside [0, size) (else it reads the zero padding)."""
    src = positions[:, None] + torch.arange(ksize, device=positions.device)[None, :] - pad
    return ((src >= 0) & (src < size)).to(torch.float32)


def conv_with_constant_channels(feat: Tensor, conv: nn.Conv2d, const: Tensor) -> Tensor:
    r"""``conv(cat([feat, const stretched to feat's size]))`` without building the concatenation.

    With the weight split as :math:`W = [W_f, W_c]` along the input channels and a code :math:`c` constant in
    space, the code's share of the output is :math:`T_{o,u,v} = \sum_i W_c[o,i,u,v]\,c_i` summed over the taps
    that fall inside the image (zero padding):

    .. math::
        \mathrm{conv}([f, S(c)])_{o,y,x} = (W_f * f)_{o,y,x} + b_o + \sum_{u,v} T_{o,u,v}\,
        r_y(u)\,r_x(v)

    with :math:`r_y(u) = 1` when row :math:`y + u - p` lies in the image. In the interior this is the constant
    :math:`\sum_{u,v} T_{o,u,v}` (added as a per-channel bias); only the ``p = k // 2`` wide border bands
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
    rows = torch.arange(height, device=feat.device)
    cols = torch.arange(width, device=feat.device)
    if height <= 2 * pad or width <= 2 * pad:  # tiny map: every pixel is a border pixel
        exact = torch.einsum(
            "bouv,yu,xv->boyx", taps, _valid_taps(rows, height, ksize, pad).to(taps),
            _valid_taps(cols, width, ksize, pad).to(taps),
        )
        return out - interior[:, :, None, None] + exact
    band_rows = torch.cat((rows[:pad], rows[height - pad:]))
    band_cols = torch.cat((cols[:pad], cols[width - pad:]))
    ry = _valid_taps(band_rows, height, ksize, pad).to(taps)  # (2p, k)
    rx_all = _valid_taps(cols, width, ksize, pad).to(taps)  # (W, k)
    rx_band = _valid_taps(band_cols, width, ksize, pad).to(taps)  # (2p, k)
    # top and bottom bands, full width: (B, O, 2p, W)
    missing_rows = interior[:, :, None, None] - torch.einsum("bouv,yu,xv->boyx", taps, ry, rx_all)
    # left and right bands between them (every row tap valid there): (B, O, 2p)
    missing_cols = interior[:, :, None] - torch.einsum("bov,xv->box", taps.sum(dim=2), rx_band)
    out[:, :, :pad, :] -= missing_rows[:, :, :pad]
    out[:, :, height - pad:, :] -= missing_rows[:, :, pad:]
    out[:, :, pad:height - pad, :pad] -= missing_cols[:, :, None, :pad]
    out[:, :, pad:height - pad, width - pad:] -= missing_cols[:, :, None, pad:]
    return out


class CRB(nn.Module):
    r"""Conditional residual block (DAN v1, eq. 6 of the NeurIPS paper).

    .. math::
        f' = f + \mathrm{CA}\big(W_2 * \delta(W_1 * [f, S(c)])\big), \qquad c' = c

    where :math:`[\cdot,\cdot]` concatenates channels, :math:`S` is :func:`~dan_blocks.layers.stretch_code`,
    :math:`W_1` a 3x3 conv ``nf + cond_nf -> nf + cond_nf``, :math:`\delta` LeakyReLU(0.2), :math:`W_2` a
    3x3 conv ``nf + cond_nf -> nf`` and CA a :class:`ChannelAttention`. Parameter names (``body.0``,
    ``body.2``, ``body.3.body.*``) follow the release's ``CRB_Layer``. The inputs are never modified.

    Args:
        nf: channels of the basic (feature) path.
        cond_nf: channels of the condition (code) path.
        reduction: channel-attention squeeze ratio (16).
        negative_slope: LeakyReLU slope (0.2).
        stretch_mode: how a spatial condition of another size is resized, see :func:`stretch_code`.

    Fast path (:attr:`fast_path`, on by default; see :func:`~dan_blocks.archs.set_fast_path`): a global code
    (B, C) / (B, C, 1, 1) is never stretched nor concatenated, see :func:`conv_with_constant_channels`; a
    spatial code map falls back to the concatenation, with the LeakyReLU fused into the conv for CPU
    inference. Same numbers as the plain path up to float rounding (tested <= 1e-5 relative).

    Shape:
        feat: (B, nf, H, W); cond: (B, cond_nf), (B, cond_nf, 1, 1) or (B, cond_nf, h, w)
        -> (feat', cond) with feat' of shape (B, nf, H, W) and cond returned as given.
    """

    #: use the fast implementation (class default; instances may override)
    fast_path: bool = True

    def __init__(
        self,
        nf: int = 64,
        cond_nf: int = 10,
        reduction: int = 16,
        negative_slope: float = 0.2,
        stretch_mode: str = "nearest",
    ) -> None:
        super().__init__()
        self.nf = nf
        self.cond_nf = cond_nf
        self.stretch_mode = stretch_mode
        self.negative_slope = negative_slope
        width = nf + cond_nf
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, 1, 1),
            nn.LeakyReLU(negative_slope),
            nn.Conv2d(width, nf, 3, 1, 1),
            ChannelAttention(nf, reduction, negative_slope),
        )

    def residual(self, feat: Tensor, cond: Tensor) -> Tensor:
        """The branch before channel attention, :math:`W_2 * \\delta(W_1 * [f, S(c)])`, shape (B, nf, H, W).

        Purely local (3x3 convs), so it can be computed tile by tile; ``forward`` adds
        ``residual * CA.attention(residual)`` to ``feat``.
        """
        if feat.dim() != 4 or feat.shape[1] != self.nf:
            raise ValueError(f"CRB expects features (B, {self.nf}, H, W), got {feat.shape}")
        if cond.shape[0] != feat.shape[0] or cond.shape[1] != self.cond_nf:
            raise ValueError(
                f"CRB expects a condition (B={feat.shape[0]}, {self.cond_nf}[, h, w]), got {cond.shape}"
            )
        if torch.jit.is_scripting():
            return self._residual_plain(feat, cond)
        if self.fast_path:
            return self._residual_fast(feat, cond)
        return self._residual_plain(feat, cond)

    def _residual_plain(self, feat: Tensor, cond: Tensor) -> Tensor:
        stretched = stretch_code(cond, (feat.shape[-2], feat.shape[-1]), self.stretch_mode)
        return self.body[2](self.body[1](self.body[0](torch.cat((feat, stretched), dim=1))))

    @torch.jit.unused
    def _residual_fast(self, feat: Tensor, cond: Tensor) -> Tensor:
        first = self.body[0]
        is_global = cond.dim() == 2 or (cond.shape[-2] == 1 and cond.shape[-1] == 1)
        if is_global and not _capturing():  # traced graphs keep the size-generic concatenation
            hidden = conv_with_constant_channels(feat, first, cond.reshape(cond.shape[0], self.cond_nf))
            return self.body[2](F.leaky_relu(hidden, self.negative_slope, inplace=not torch.is_grad_enabled()))
        stretched = stretch_code(cond, (feat.shape[-2], feat.shape[-1]), self.stretch_mode)
        joined = torch.cat((feat, stretched), dim=1)
        return self.body[2](fused_conv_leaky_relu(joined, first, self.negative_slope))

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        res = self.residual(feat, cond)
        if torch.jit.is_scripting():
            return feat + self.body[3](res), cond
        if self.fast_path:
            return torch.addcmul(feat, res, self.body[3].attention(res)), cond
        return feat + self.body[3](res), cond

    def extra_repr(self) -> str:
        return f"nf={self.nf}, cond_nf={self.cond_nf}"
