"""Spatial feature transform (SFT, Wang et al. CVPR 2018), conditioned on a kernel-code map (as in MANet's
non-blind RRDB-SFT restorer)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["SFTLayer"]


class SFTLayer(nn.Module):
    r"""Affine modulation of features by a per-pixel condition map.

    With $z = \mathrm{cat}(f, c)$ the features and the code map,

    $$
    \gamma = \sigma\big(W^{\gamma}_2 * \mathrm{LReLU}_{0.2}(W^{\gamma}_1 * z)\big), \qquad
    \beta = W^{\beta}_2 * \mathrm{LReLU}_{0.2}(W^{\beta}_1 * z), \qquad
    \mathrm{SFT}(f, c) = f \odot \gamma + \beta
    $$

    with 3x3 convolutions ``nf + C -> hidden -> nf`` (MANet fixes ``hidden`` at 32, whatever ``nf``).

    Args:
        nf: feature channels (64).
        code_length: channels ``C`` of the condition map (15, MANet's code length).
        hidden: channels between the two convolutions of each branch (32).
        negative_slope: of the LeakyReLUs (0.2).

    Shape:
        feat: (B, nf, H, W); code: (B, C, H, W) or a global code (B, C) -> (B, nf, H, W)
    """

    def __init__(self, nf: int = 64, code_length: int = 15, hidden: int = 32, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.nf = nf
        self.code_length = code_length
        self.scale = nn.Sequential(
            nn.Conv2d(nf + code_length, hidden, 3, 1, 1), nn.LeakyReLU(negative_slope), nn.Conv2d(hidden, nf, 3, 1, 1)
        )
        self.shift = nn.Sequential(
            nn.Conv2d(nf + code_length, hidden, 3, 1, 1), nn.LeakyReLU(negative_slope), nn.Conv2d(hidden, nf, 3, 1, 1)
        )

    def receptive_radius(self) -> int:
        """Tiling protocol: two 3x3 convolutions."""
        return 2

    def forward(self, feat: Tensor, code: Tensor) -> Tensor:
        if feat.dim() != 4 or feat.shape[1] != self.nf:
            raise ValueError(f"SFTLayer feat must be (B, {self.nf}, H, W), got shape {list(feat.shape)}")
        if code.dim() == 2:
            code = code[:, :, None, None].expand(-1, -1, feat.shape[-2], feat.shape[-1])
        if code.dim() != 4 or code.shape[1] != self.code_length or code.shape[-2:] != feat.shape[-2:]:
            raise ValueError(
                f"SFTLayer code must be (B, {self.code_length}) or (B, {self.code_length}, "
                f"{feat.shape[-2]}, {feat.shape[-1]}) for features {list(feat.shape)}, got shape {list(code.shape)}"
            )
        z = torch.cat((feat, code), dim=1)
        return feat * torch.sigmoid(self.scale(z)) + self.shift(z)

    def extra_repr(self) -> str:
        return f"nf={self.nf}, code_length={self.code_length}"
