"""Dual-Path Conditional Block (DPCB) and Group (DPCG), DAN v2's building blocks."""

from __future__ import annotations

from typing import Any, cast

from torch import Tensor, nn

from .fusion import DualPath, Fusion, as_map, create_fusion
from .two_conv import TwoConv

__all__ = ["DPCB", "DPCG", "RESIDUAL_MODES"]

RESIDUAL_MODES = ("add", "double")


class DPCB(nn.Module):
    r"""Dual-path conditional block (DAN v2).

    $$
    f' = f + \mathrm{fuse}\big(B_1(f), c\big), \qquad c' \text{ from the fusion}
    $$

    with $B_1$ = conv(k) -> LeakyReLU(0.2) -> conv(k) on the basic path (``body1``, a `TwoConv`). The default
    fusion ``dual_path`` is the paper's condition path ``body2`` = $B_2$, conv(k_c) -> LeakyReLU(0.2) -> conv(k_c):

    $$
    f' = f + B_1(f) \odot B_2(c), \qquad c' = c + B_2(c)
    $$

    A (B, C, 1, 1) condition broadcasts over the feature map, which is how the v2 Restorer conditions on a global
    code. Another fusion (`dan_blocks.layers.fusion`) takes ``body2``'s place; one whose output is wider than
    ``nf`` (``stretch_concat``) is followed by a 1x1 projection ``proj`` back to ``nf``.

    Args:
        nf: channels of the basic path.
        cond_nf: channels of the condition path (``nf`` in DAN v2, where the condition takes the residual).
        ksize: kernel size of the basic path (3).
        cond_ksize: kernel size of the condition path (1 in the Restorer, 3 in the Estimator).
        negative_slope: LeakyReLU slope (0.2).
        fusion: a registered fusion name or class (``"dual_path"``).
        fusion_kwargs: its arguments.

    Shape:
        feat: (B, nf, H, W); cond: (B, cond_nf, 1, 1) or (B, cond_nf, H, W) -> (feat', cond').
    """

    def __init__(
        self,
        nf: int = 64,
        cond_nf: int = 64,
        ksize: int = 3,
        cond_ksize: int = 1,
        negative_slope: float = 0.2,
        fusion: str | type[nn.Module] = "dual_path",
        fusion_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if ksize % 2 == 0 or cond_ksize % 2 == 0:
            raise ValueError(f"DPCB kernel sizes must be odd, got ksize={ksize}, cond_ksize={cond_ksize}")
        self.nf = nf
        self.cond_nf = cond_nf
        self.negative_slope = negative_slope
        self.body1 = TwoConv(nf, nf, ksize, negative_slope)
        self.body2 = create_fusion(
            fusion, nf, cond_nf, fusion_kwargs, cond_ksize=cond_ksize, negative_slope=negative_slope
        )
        width = int(cast(Fusion, self.body2).out_channels)  # any fusion module follows the Fusion signature
        self.proj = None if width == nf else nn.Conv2d(width, nf, 1)

    def check_inputs(self, feat: Tensor, cond: Tensor) -> None:
        """Raise ``ValueError`` unless feat is (B, nf, H, W) and cond (B, cond_nf[, 1|H, 1|W])."""
        if feat.dim() != 4 or cond.dim() not in (2, 4) or feat.shape[1] != self.nf or cond.shape[1] != self.cond_nf:
            raise ValueError(
                f"DPCB expects features (B, {self.nf}, H, W) and a condition (B, {self.cond_nf}, 1|H, 1|W), got "
                f"{list(feat.shape)} and {list(cond.shape)}"
            )

    def receptive_radius(self) -> int:
        """Tiling protocol: spatially local, within the basic path's radius plus the fusion's (for a spatial
        condition, its two convs)."""
        basic = self.body1.receptive_radius()
        fusion = int(cast(Fusion, self.body2).receptive_radius())
        if isinstance(self.body2, DualPath):  # its convs run on the condition, in parallel with B1
            return max(basic, fusion)
        return basic + fusion

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        self.check_inputs(feat, cond)
        fused, cond = self.body2(self.body1(feat), cond)
        return feat + (fused if self.proj is None else self.proj(fused)), cond


class DPCG(nn.Module):
    r"""Dual-path conditional group: ``num_blocks`` DPCBs and a group residual.

    ``residual="add"`` (the intended design):

    $$
    (f', c') = (f, c) + \mathrm{body}(f, c)
    $$

    ``residual="double"`` reproduces the DAN v2 release, whose blocks overwrite the input list in place so
    that its "residual" adds the body output to itself:

    $$
    (f', c') = 2\,\mathrm{body}(f, c)
    $$

    The released v2 weights only reproduce with ``"double"``; train new models with ``"add"``. Either way
    the inputs are never modified here.

    Args:
        nf: channels of the basic path, as in `DPCB`.
        cond_nf: channels of the condition path.
        ksize: kernel size of the basic path.
        cond_ksize: kernel size of the condition path.
        num_blocks: number of DPCBs (10 in the Restorer, 5 in the Estimator).
        residual: ``"add"`` or ``"double"``.
        negative_slope: LeakyReLU slope (0.2).
        fusion, fusion_kwargs: of every block, see `DPCB`.

    Shape:
        as `DPCB`.
    """

    def __init__(
        self,
        nf: int = 64,
        cond_nf: int = 64,
        ksize: int = 3,
        cond_ksize: int = 1,
        num_blocks: int = 10,
        residual: str = "add",
        negative_slope: float = 0.2,
        fusion: str | type[nn.Module] = "dual_path",
        fusion_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if residual not in RESIDUAL_MODES:
            raise ValueError(f"DPCG residual must be one of {RESIDUAL_MODES}, got {residual!r}")
        if num_blocks < 1:
            raise ValueError(f"DPCG needs num_blocks >= 1, got {num_blocks}")
        self.residual = residual
        self.body = nn.ModuleList(
            DPCB(nf, cond_nf, ksize, cond_ksize, negative_slope, fusion, fusion_kwargs) for _ in range(num_blocks)
        )

    def receptive_radius(self) -> int:
        """Tiling protocol: spatially local, within the sum of its blocks' radii."""
        return sum(cast(DPCB, block).receptive_radius() for block in self.body)

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        f, c = feat, cond
        for block in self.body:
            f, c = block(f, c)
        if self.residual == "double":
            return f + f, c + c
        return feat + f, (as_map(cond) if c.dim() == 4 else cond) + c  # a (B, C) code may come back as a map

    def extra_repr(self) -> str:
        return f"num_blocks={len(self.body)}, residual={self.residual!r}"
