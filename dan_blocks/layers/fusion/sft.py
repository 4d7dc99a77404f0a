"""Spatial feature transform: an affine modulation of the features predicted from the code.

Two forms: SFTGAN's (``sft``: scale and shift from the code alone, $f \\odot (1 + \\gamma) + \\beta$) and the one of
MANet and IKC (``sft_concat``: a sigmoid scale and a shift from the features joined with the code map).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..two_conv import TwoConv
from .base import Fusion, as_map

__all__ = ["SFT", "SFTConcat", "SFTLayer"]


class SFT(Fusion):
    r"""$\mathrm{fuse}(f, c) = f \odot (1 + \gamma(c)) + \beta(c)$, $c' = c$ (Wang et al., CVPR 2018).

    $\gamma = W^\gamma_2 * \delta(W^\gamma_1 * c)$ and $\beta$ likewise, with 1x1 convolutions ``cond_nf -> hidden
    -> nf`` and $\delta$ LeakyReLU: per pixel of a code map, or once for a global code (then broadcast). All-zero
    weights give the identity.

    Args:
        nf: feature channels.
        cond_nf: code channels.
        hidden: channels between the two convolutions of each branch (32).
        negative_slope: LeakyReLU slope (0.2).

    Shape:
        feat (B, nf, H, W); cond (B, cond_nf), (B, cond_nf, 1, 1) or (B, cond_nf, H, W) -> (B, nf, H, W), cond
    """

    def __init__(self, nf: int, cond_nf: int, hidden: int = 32, negative_slope: float = 0.2) -> None:
        super().__init__(nf, cond_nf)
        self.gamma = TwoConv(cond_nf, nf, 1, negative_slope, hidden)
        self.beta = TwoConv(cond_nf, nf, 1, negative_slope, hidden)

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        code = self.pointwise_code(feat, cond)
        return feat * (1 + self.gamma(code)) + self.beta(code), cond


class SFTLayer(Fusion):
    r"""The SFT layer of MANet's RRDB-SFT and IKC's SFTMD: with $z = [f, c]$ the features and the code map,

    $$
    \gamma = \sigma\big(W^{\gamma}_2 * \delta(W^{\gamma}_1 * z)\big), \qquad
    \beta = W^{\beta}_2 * \delta(W^{\beta}_1 * z), \qquad
    \mathrm{fuse}(f, c) = f \odot \gamma + \beta, \quad c' = c
    $$

    with 3x3 convolutions ``nf + C -> hidden -> nf`` (``hidden`` 32 whatever ``nf`` in both releases) and
    $\delta$ LeakyReLU(0.2). Keys ``scale.{0,2}`` and ``shift.{0,2}``. Registered as ``sft_concat``.

    Args:
        nf: feature channels (64).
        code_length: channels ``C`` of the code map (15, MANet's code length).
        hidden: channels between the two convolutions of each branch (32).
        negative_slope: of the LeakyReLUs (0.2).

    Shape:
        feat: (B, nf, H, W); code: (B, C, H, W) or a global code (B, C) -> ((B, nf, H, W), code)
    """

    def __init__(self, nf: int = 64, code_length: int = 15, hidden: int = 32, negative_slope: float = 0.2) -> None:
        super().__init__(nf, code_length)
        self.code_length = code_length
        self.scale = TwoConv(nf + code_length, nf, 3, negative_slope, hidden)
        self.shift = TwoConv(nf + code_length, nf, 3, negative_slope, hidden)

    def receptive_radius(self) -> int:
        """Tiling protocol: two 3x3 convolutions."""
        return 2

    def forward(self, feat: Tensor, code: Tensor) -> tuple[Tensor, Tensor]:
        if feat.dim() != 4 or feat.shape[1] != self.nf:
            raise ValueError(f"SFTLayer feat must be (B, {self.nf}, H, W), got shape {list(feat.shape)}")
        code_map = code
        if code.dim() == 2 or (code.dim() == 4 and code.shape[-2:] == (1, 1)):
            code_map = as_map(code).expand(-1, -1, feat.shape[-2], feat.shape[-1])
        if code_map.dim() != 4 or code_map.shape[1] != self.code_length or code_map.shape[-2:] != feat.shape[-2:]:
            raise ValueError(
                f"SFTLayer code must be (B, {self.code_length}) or (B, {self.code_length}, "
                f"{feat.shape[-2]}, {feat.shape[-1]}) for features {list(feat.shape)}, got shape {list(code.shape)}"
            )
        z = torch.cat((feat, code_map), dim=1)
        return feat * torch.sigmoid(self.scale(z)) + self.shift(z), code

    def extra_repr(self) -> str:
        return f"nf={self.nf}, code_length={self.code_length}"


#: the registered name's class (``sft_concat``)
SFTConcat = SFTLayer


