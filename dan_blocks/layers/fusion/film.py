"""FiLM (Perez et al., AAAI 2018): a per-channel scale and shift of the features from one MLP of the code."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from ..two_conv import TwoConv
from .base import Fusion

__all__ = ["FiLM"]


class FiLM(Fusion):
    r"""$\mathrm{fuse}(f, c) = f \odot \gamma(c) + \beta(c)$, $c' = c$, with $[\gamma, \beta]$ = one MLP of the code
    (1x1 convolutions ``cond_nf -> hidden -> 2 nf``, LeakyReLU between).

    Not in any release: one shared hidden layer for scale and shift (SFT has two branches). The last layer starts
    at zero weights and a bias of 1 for $\gamma$ and 0 for $\beta$, so a new FiLM starts as the identity.

    Args:
        nf: feature channels.
        cond_nf: code channels.
        hidden: width of the MLP (64).
        negative_slope: LeakyReLU slope (0.2).

    Shape:
        feat (B, nf, H, W); cond (B, cond_nf), (B, cond_nf, 1, 1) or (B, cond_nf, H, W) -> (B, nf, H, W), cond
    """

    def __init__(self, nf: int, cond_nf: int, hidden: int = 64, negative_slope: float = 0.2) -> None:
        super().__init__(nf, cond_nf)
        self.mlp = TwoConv(cond_nf, 2 * nf, 1, negative_slope, hidden)
        with torch.no_grad():
            last = cast(nn.Conv2d, self.mlp[2])
            bias = last.bias
            assert bias is not None  # TwoConv's convolutions have a bias
            last.weight.zero_()
            bias.zero_()
            bias[:nf].fill_(1.0)

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        code = self.pointwise_code(feat, cond)
        gamma, beta = self.mlp(code).chunk(2, dim=1)
        return feat * gamma + beta, cond
