"""Conditional Residual Block (CRB), DAN v1's building block."""

from __future__ import annotations

from typing import Any, cast

from torch import Tensor, nn

from .channel_attention import ChannelAttention
from .fusion import Fusion, conv_after_fusion, create_fusion
from .local_part import local_part
from .two_conv import activate_conv_output

__all__ = ["CRB"]


class CRB(nn.Module):
    r"""Conditional residual block (DAN v1, eq. 6 of the NeurIPS paper).

    $$
    f' = f + \mathrm{CA}\big(W_2 * \delta(W_1 * \mathrm{fuse}(f, c))\big), \qquad c' \text{ from the fusion}
    $$

    With the default fusion ``stretch_concat``, $\mathrm{fuse}(f, c) = [f, S(c)]$ ($S$ = `stretch_code()`),
    $W_1$ a 3x3 conv ``nf + cond_nf -> nf + cond_nf``, $\delta$ LeakyReLU(0.2), $W_2$ a 3x3 conv
    ``nf + cond_nf -> nf``, CA a `ChannelAttention`, and $c' = c$: the release's ``CRB_Layer`` (keys ``body.0``,
    ``body.2``, ``body.3.body.*``). Another fusion (`dan_blocks.layers.fusion`) gives $W_1$, $W_2$ its
    ``out_channels`` inputs and is kept as ``fusion``. The inputs are never modified.

    Args:
        nf: channels of the basic (feature) path.
        cond_nf: channels of the condition (code) path.
        reduction: channel-attention squeeze ratio (16).
        negative_slope: LeakyReLU slope (0.2).
        fusion: a registered fusion name or class (``"stretch_concat"``).
        fusion_kwargs: its arguments (``stretch_concat``: ``stretch_mode``).

    Shape:
        feat: (B, nf, H, W); cond: (B, cond_nf), (B, cond_nf, 1, 1) or (B, cond_nf, h, w)
        -> (feat', cond') with feat' of shape (B, nf, H, W).
    """

    def __init__(
        self,
        nf: int = 64,
        cond_nf: int = 10,
        reduction: int = 16,
        negative_slope: float = 0.2,
        fusion: str | type[nn.Module] = "stretch_concat",
        fusion_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.nf = nf
        self.cond_nf = cond_nf
        self.negative_slope = negative_slope
        self.fusion = create_fusion(fusion, nf, cond_nf, fusion_kwargs, negative_slope=negative_slope)
        width = int(cast(Fusion, self.fusion).out_channels)  # any fusion module follows the Fusion signature
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
        res, cond = self.residual_branch(feat, cond)
        return feat + self.body[3](res), cond

    def branch_radius(self) -> int | None:
        """Radius of `residual_branch` in pixels: the fusion's + 2 (two 3x3 convs); None when the fusion is not
        spatially local (it pools the features)."""
        radius = getattr(self.fusion, "receptive_radius", None)
        value = radius() if callable(radius) else None
        return None if value is None else int(value) + 2

    @local_part(lambda self: self.branch_radius())
    def residual_branch(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        r"""$(W_2 * \delta(W_1 * \mathrm{fuse}(f, c)), c')$: the block without its channel attention, spatially
        local (radius: the fusion's + 2), so a tiled run computes it tile by tile (`dan_blocks.layers.local_part`)."""
        hidden, cond = conv_after_fusion(self.fusion, self.body[0], feat, cond)  # W1 * fuse(f, c)
        return self.body[2](self._activate(hidden)), cond

    def _activate(self, hidden: Tensor) -> Tensor:
        r"""$\delta$ on $W_1 * \mathrm{fuse}(f, c)$, in place when ``body.0`` is a plain conv (its output is fresh):
        autograd then keeps one map for the pair, as the release's ``LeakyReLU(0.2, True)``."""
        if type(self.body[0]) is nn.Conv2d:
            return activate_conv_output(self.body[1], hidden)
        return cast(Tensor, self.body[1](hidden))

    def extra_repr(self) -> str:
        name = getattr(self.fusion, "fusion_name", "") or type(self.fusion).__name__
        return f"nf={self.nf}, cond_nf={self.cond_nf}" + ("" if name == "stretch_concat" else f", fusion={name!r}")
