"""Conditional Residual Block (CRB), DAN v1's building block."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .channel_attention import ChannelAttention
from .kernel_stretch import stretch_code

__all__ = ["CRB"]


class CRB(nn.Module):
    r"""Conditional residual block (DAN v1, eq. 6 of the NeurIPS paper).

    $$
    f' = f + \mathrm{CA}\big(W_2 * \delta(W_1 * [f, S(c)])\big), \qquad c' = c
    $$

    where $[\cdot,\cdot]$ concatenates channels, $S$ is `stretch_code()`,
    $W_1$ a 3x3 conv ``nf + cond_nf -> nf + cond_nf``, $\delta$ LeakyReLU(0.2), $W_2$ a
    3x3 conv ``nf + cond_nf -> nf`` and CA a `ChannelAttention`. Parameter names (``body.0``,
    ``body.2``, ``body.3.body.*``) follow the release's ``CRB_Layer``. The inputs are never modified.

    Args:
        nf: channels of the basic (feature) path.
        cond_nf: channels of the condition (code) path.
        reduction: channel-attention squeeze ratio (16).
        negative_slope: LeakyReLU slope (0.2).
        stretch_mode: how a spatial condition of another size is resized, see `stretch_code()`.

    The fast variant of `dan_blocks.optimize()` computes the same block without building the stretched
    code (`dan_blocks.fast.FastCRB`).

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
        self.negative_slope = negative_slope
        width = nf + cond_nf
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, 1, 1),
            nn.LeakyReLU(negative_slope),
            nn.Conv2d(width, nf, 3, 1, 1),
            ChannelAttention(nf, reduction, negative_slope),
        )

    def check_inputs(self, feat: Tensor, cond: Tensor) -> None:
        """Raise ``ValueError`` unless feat is (B, nf, H, W) and cond (B, cond_nf[, h, w])."""
        if feat.dim() != 4 or feat.shape[1] != self.nf:
            raise ValueError(f"CRB expects features (B, {self.nf}, H, W), got {list(feat.shape)}")
        if cond.dim() not in (2, 4) or cond.shape[0] != feat.shape[0] or cond.shape[1] != self.cond_nf:
            raise ValueError(
                f"CRB expects a condition (B={feat.shape[0]}, {self.cond_nf}[, h, w]), got {list(cond.shape)}"
            )

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        self.check_inputs(feat, cond)
        stretched = stretch_code(cond, (feat.shape[-2], feat.shape[-1]), self.stretch_mode)
        return feat + self.body(torch.cat((feat, stretched), dim=1)), cond

    def extra_repr(self) -> str:
        return f"nf={self.nf}, cond_nf={self.cond_nf}"
