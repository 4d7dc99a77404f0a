"""Dual-Path Conditional Block (DPCB) and Group (DPCG), DAN v2's building blocks."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["DPCB", "DPCG", "RESIDUAL_MODES"]

RESIDUAL_MODES = ("add", "double")


def _two_convs(c_in: int, c_out: int, ksize: int, negative_slope: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, ksize, 1, ksize // 2),
        nn.LeakyReLU(negative_slope),
        nn.Conv2d(c_out, c_out, ksize, 1, ksize // 2),
    )


class DPCB(nn.Module):
    r"""Dual-path conditional block (DAN v2).

    $$
    f' = f + B_1(f) \odot B_2(c), \qquad c' = c + B_2(c)
    $$

    with $B_1$ = conv(k) -> LeakyReLU(0.2) -> conv(k) on the basic path (``body1``) and $B_2$ =
    conv(k_c) -> LeakyReLU(0.2) -> conv(k_c) on the condition path (``body2``). $B_2(c)$ is computed
    once and used on both paths. A (B, C, 1, 1) condition broadcasts over the feature map, which is how the
    v2 Restorer conditions on a global code at the cost of 1x1 convs on a 1x1 map.

    Args:
        nf: channels of the basic path.
        cond_nf: channels of the condition path; must equal ``nf`` because of the residual $c + B_2(c)$.
        ksize: kernel size of the basic path (3).
        cond_ksize: kernel size of the condition path (1 in the Restorer, 3 in the Estimator).
        negative_slope: LeakyReLU slope (0.2).

    `dan_blocks.optimize()` swaps in `dan_blocks.fast.FastDPCB` (same numbers, fewer passes).

    Shape:
        feat: (B, nf, H, W); cond: (B, nf, 1, 1) or (B, nf, H, W) -> (feat', cond') of the same shapes.
    """

    def __init__(
        self, nf: int = 64, cond_nf: int = 64, ksize: int = 3, cond_ksize: int = 1, negative_slope: float = 0.2
    ) -> None:
        super().__init__()
        if cond_nf != nf:
            raise ValueError(
                f"DPCB needs cond_nf == nf for its condition residual c + B2(c); got nf={nf}, cond_nf={cond_nf}"
            )
        if ksize % 2 == 0 or cond_ksize % 2 == 0:
            raise ValueError(f"DPCB kernel sizes must be odd, got ksize={ksize}, cond_ksize={cond_ksize}")
        self.nf = nf
        self.negative_slope = negative_slope
        self.body1 = _two_convs(nf, nf, ksize, negative_slope)
        self.body2 = _two_convs(cond_nf, nf, cond_ksize, negative_slope)

    def check_inputs(self, feat: Tensor, cond: Tensor) -> None:
        """Raise ``ValueError`` unless feat is (B, nf, H, W) and cond (B, nf, 1|H, 1|W)."""
        if feat.dim() != 4 or cond.dim() != 4 or feat.shape[1] != self.nf or cond.shape[1] != self.nf:
            raise ValueError(
                f"DPCB expects features (B, {self.nf}, H, W) and a condition (B, {self.nf}, 1|H, 1|W), got "
                f"{list(feat.shape)} and {list(cond.shape)}"
            )

    def receptive_radius(self) -> int:
        """Tiling protocol: spatially local, within ``2 max(k, k_c) // 2`` pixels (two convs per path)."""
        return 2 * (max(self.body1[0].kernel_size[0], self.body2[0].kernel_size[0]) // 2)

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        self.check_inputs(feat, cond)
        gate = self.body2(cond)
        return feat + self.body1(feat) * gate, cond + gate


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
        cond_nf: channels of the condition path (must equal ``nf``).
        ksize: kernel size of the basic path.
        cond_ksize: kernel size of the condition path.
        num_blocks: number of DPCBs (10 in the Restorer, 5 in the Estimator).
        residual: ``"add"`` or ``"double"``.
        negative_slope: LeakyReLU slope (0.2).

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
    ) -> None:
        super().__init__()
        if residual not in RESIDUAL_MODES:
            raise ValueError(f"DPCG residual must be one of {RESIDUAL_MODES}, got {residual!r}")
        if num_blocks < 1:
            raise ValueError(f"DPCG needs num_blocks >= 1, got {num_blocks}")
        self.residual = residual
        self.body = nn.ModuleList(
            DPCB(nf, cond_nf, ksize, cond_ksize, negative_slope) for _ in range(num_blocks)
        )

    def receptive_radius(self) -> int:
        """Tiling protocol: spatially local, within the sum of its blocks' radii."""
        return sum(block.receptive_radius() for block in self.body)

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        f, c = feat, cond
        for block in self.body:
            f, c = block(f, c)
        if self.residual == "double":
            return f + f, c + c
        return feat + f, cond + c

    def extra_repr(self) -> str:
        return f"num_blocks={len(self.body)}, residual={self.residual!r}"
