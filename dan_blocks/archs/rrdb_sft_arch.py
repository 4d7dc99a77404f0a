"""MANet's non-blind restorer: RRDB blocks conditioned by SFT on a per-pixel kernel-code map."""

from __future__ import annotations

from typing import Any, cast

from torch import Tensor, nn

from ..layers import RRDBSFT
from .checks import check_code, check_image
from .registry import register_arch

__all__ = ["RRDBSFTRestorer"]


@register_arch
class RRDBSFTRestorer(nn.Module):
    r"""Restorer $R(y, c)$ of MANet's stage 3 (RRDB-SFT), usable in any alternation (`DAN`).

    $$
    f_0 = W_{\mathrm{first}} * y, \qquad
    f = f_0 + W_{\mathrm{trunk}} * \big(\mathrm{RRDB}^{(n_b)}_{\mathrm{SFT}} \circ \dots \circ
    \mathrm{RRDB}^{(1)}_{\mathrm{SFT}}\big)(f_0, c), \qquad
    \hat x = \mathrm{PS}_s(W_{\mathrm{up}} * f)
    $$

    ``conv_first`` 3x3 ``in_nc -> nf``; ``trunk`` = ``nb`` `dan_blocks.layers.RRDBSFT` blocks, each modulating
    its input by the code map; ``trunk_conv`` 3x3 ``nf -> nf``; ``upsampler`` = 3x3 conv ``nf -> out_nc s²``
    and PixelShuffle(s) (no clamp), as released.

    Args:
        in_nc, out_nc: image channels (3).
        nf: feature channels (64).
        nb: RRDB-SFT blocks (10).
        gc: growth channels of the dense blocks (32).
        scale: SR factor ``s`` (4).
        code_length: code length ``C`` (15, MANet's PCA).
        fusion: how each block fuses the code map into the features, a registered name or a class
            (``"sft_concat"``, MANet's SFT layer, as released).
        fusion_kwargs: the fusion's arguments.

    Shape:
        lr: (B, in_nc, h, w); code: per pixel (B, C, h, w) or global (B, C) -> sr (B, out_nc, s h, s w)
    """

    def __init__(
        self,
        in_nc: int = 3,
        out_nc: int = 3,
        nf: int = 64,
        nb: int = 10,
        gc: int = 32,
        scale: int = 4,
        code_length: int = 15,
        fusion: str | type[nn.Module] = "sft_concat",
        fusion_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ValueError(f"RRDBSFTRestorer scale must be >= 1, got {scale}")
        self.in_nc = in_nc
        self.scale = scale
        self.code_length = code_length
        self.conv_first = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.trunk = nn.ModuleList(
            RRDBSFT(nf, gc, code_length, fusion=fusion, fusion_kwargs=fusion_kwargs) for _ in range(nb)
        )
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upsampler = nn.Sequential(nn.Conv2d(nf, out_nc * scale * scale, 3, 1, 1), nn.PixelShuffle(scale))
        #: tiling protocol: the output is ``scale`` times the LR's size
        self.output_scale = scale

    def receptive_radius(self) -> int:
        """Tiling protocol: given its code map the restorer is spatially local (173 LR pixels as released)."""
        return 1 + sum(cast(RRDBSFT, block).receptive_radius() for block in self.trunk) + 1 + 1

    def forward(self, lr: Tensor, code: Tensor) -> Tensor:
        check_image("RRDBSFTRestorer lr", lr, self.in_nc)
        check_code("RRDBSFTRestorer", code, lr, self.code_length)
        if code.dim() == 4 and code.shape[-2:] != lr.shape[-2:]:  # a global (B, C) code goes to the fusion as is
            raise ValueError(
                f"RRDBSFTRestorer code map {list(code.shape)} must be on the LR grid {list(lr.shape[-2:])}"
            )
        first = self.conv_first(lr)
        feat = first
        for block in self.trunk:
            feat, code = block(feat, code)
        return self.upsampler(first + self.trunk_conv(feat))
