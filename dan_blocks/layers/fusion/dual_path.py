"""The dual multiplicative path of DAN v2's DPCB: the code, through two convolutions, gates the features."""

from __future__ import annotations

from typing import cast

from torch import Tensor, nn

from ..two_conv import TwoConv
from .base import Fusion, as_map

__all__ = ["DualPath"]


class DualPath(Fusion, TwoConv):
    r"""$\mathrm{fuse}(x, c) = x \odot B_2(c)$, $c' = c + B_2(c)$, with $B_2$ = conv(k_c) -> LeakyReLU -> conv(k_c).

    $B_2(c)$ is computed once and used on both paths. When ``cond_nf != nf`` the code cannot take the residual
    and passes on unchanged ($c' = c$). In a `DPCB` this is the condition path ``body2`` (keys ``body2.0``,
    ``body2.2`` as released) applied to the basic path's output $B_1(f)$.

    Args:
        nf: feature channels.
        cond_nf: code channels.
        cond_ksize: kernel size of the condition path (1 in the v2 restorer, 3 in the v2 estimator).
        negative_slope: LeakyReLU slope (0.2).

    Shape:
        feat (B, nf, H, W); cond (B, cond_nf), (B, cond_nf, 1, 1) or (B, cond_nf, H, W) -> (B, nf, H, W), and the
        code as a map.
    """

    def __init__(self, nf: int, cond_nf: int, cond_ksize: int = 1, negative_slope: float = 0.2) -> None:
        TwoConv.__init__(self, cond_nf, nf, cond_ksize, negative_slope)
        Fusion.check_sizes(self, nf, cond_nf)

    def gate(self, cond: Tensor) -> Tensor:
        """$B_2(c)$, shape (B, nf, 1|H, 1|W)."""
        return TwoConv.forward(self, as_map(cond))

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        cond = as_map(cond)
        if feat.dim() != 4 or feat.shape[1] != self.nf or cond.shape[1] != self.cond_nf:
            raise ValueError(
                f"DualPath expects features (B, {self.nf}, H, W) and a condition (B, {self.cond_nf}, 1|H, 1|W), got "
                f"{list(feat.shape)} and {list(cond.shape)}"
            )
        gate = self.gate(cond)
        return feat * gate, (cond + gate if self.cond_nf == self.nf else cond)

    def receptive_radius(self) -> int:
        """Tiling protocol: the condition path's two convolutions (on a code map)."""
        return TwoConv.receptive_radius(self)

    def extra_repr(self) -> str:
        return f"nf={self.nf}, cond_nf={self.cond_nf}, cond_ksize={cast(nn.Conv2d, self[0]).kernel_size[0]}"
