"""Conditional Residual Block (CRB), DAN v1's building block."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .channel_attention import ChannelAttention
from .kernel_stretch import stretch_code

__all__ = ["CRB"]


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

    Shape:
        feat: (B, nf, H, W); cond: (B, cond_nf), (B, cond_nf, 1, 1) or (B, cond_nf, h, w)
        -> (feat', cond) with feat' of shape (B, nf, H, W) and cond returned as given.
    """

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
        stretched = stretch_code(cond, (feat.shape[-2], feat.shape[-1]), self.stretch_mode)
        return self.body[2](self.body[1](self.body[0](torch.cat((feat, stretched), dim=1))))

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        return feat + self.body[3](self.residual(feat, cond)), cond

    def extra_repr(self) -> str:
        return f"nf={self.nf}, cond_nf={self.cond_nf}"
