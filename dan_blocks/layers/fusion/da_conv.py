"""DASR's degradation-aware convolution: a per-sample depthwise kernel and a channel gate, both predicted from the
degradation representation."""

from __future__ import annotations

from typing import cast

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .base import Fusion, as_global_code

__all__ = ["DAConv"]


class DAConv(Fusion):
    r"""$\mathrm{fuse}(f, r) = W_{1\times1} * \delta\big(w(r) \circledast f\big) + f \odot a(r)$, $r' = r$
    (Wang et al., CVPR 2021).

    - $w(r)$ = ``kernel``: Linear(cond_nf, nf) -> LeakyReLU(0.1) -> Linear(nf, nf k²), both without bias, read as one
      k x k kernel per sample and channel (channel $i$ takes entries $[i k^2, (i+1) k^2)$, row-major);
      $\circledast$ is the depthwise cross-correlation with zero padding ``k // 2``; $\delta$ LeakyReLU(0.1);
      $W_{1\times1}$ = ``conv``, a 1x1 conv ``nf -> nf`` with bias.
    - $a(r) = \sigma\big(W_2\,\delta(W_1\,r)\big)$ = ``ca.conv_du``: 1x1 convs ``cond_nf -> nf // reduction ->
      nf`` without bias, from the representation alone (no pooling of the features).

    Keys ``kernel.0``, ``kernel.2``, ``conv``, ``ca.conv_du.0``, ``ca.conv_du.2`` as in DASR's release.

    Args:
        nf: feature channels (64 in DASR).
        cond_nf: representation channels (64).
        ksize: depthwise kernel size ``k`` (3).
        reduction: of the channel gate (8).
        negative_slope: LeakyReLU slope (0.1).

    Shape:
        feat (B, nf, H, W); cond: a global representation (B, cond_nf) or (B, cond_nf, 1, 1) -> (B, nf, H, W), cond
    """

    def __init__(self, nf: int, cond_nf: int, ksize: int = 3, reduction: int = 8, negative_slope: float = 0.1) -> None:
        super().__init__(nf, cond_nf)
        if ksize % 2 == 0 or ksize < 1:
            raise ValueError(f"DAConv kernel size must be odd and >= 1, got {ksize}")
        if reduction < 1 or nf // reduction < 1:
            raise ValueError(f"DAConv needs 1 <= reduction <= nf, got reduction={reduction} for nf={nf}")
        self.ksize = ksize
        self.negative_slope = negative_slope
        self.kernel = nn.Sequential(
            nn.Linear(cond_nf, nf, bias=False),
            nn.LeakyReLU(negative_slope),
            nn.Linear(nf, nf * ksize * ksize, bias=False),
        )
        self.conv = nn.Conv2d(nf, nf, 1)
        self.ca = nn.Module()
        self.ca.conv_du = nn.Sequential(
            nn.Conv2d(cond_nf, nf // reduction, 1, bias=False),
            nn.LeakyReLU(negative_slope),
            nn.Conv2d(nf // reduction, nf, 1, bias=False),
            nn.Sigmoid(),
        )

    def receptive_radius(self) -> int:
        """Tiling protocol: the depthwise convolution's radius ``k // 2``."""
        return self.ksize // 2

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        self.check_feat(feat)
        self.check_cond(feat, cond)
        r = as_global_code(cond, "the da_conv fusion")
        batch = feat.shape[0]
        weight = rearrange(self.kernel(r), "b (c kh kw) -> (b c) 1 kh kw", kh=self.ksize, kw=self.ksize)
        stacked = rearrange(feat, "b c h w -> 1 (b c) h w")
        depthwise = F.conv2d(stacked, weight, padding=self.ksize // 2, groups=batch * self.nf)
        out = self.conv(F.leaky_relu(rearrange(depthwise, "1 (b c) h w -> b c h w", b=batch), self.negative_slope))
        gate = cast(nn.Sequential, self.ca.conv_du)  # set in __init__ on a plain nn.Module (DASR's key names)
        return out + feat * gate(r[:, :, None, None]), cond

    def extra_repr(self) -> str:
        return f"nf={self.nf}, cond_nf={self.cond_nf}, ksize={self.ksize}"
