"""DAN v2 (TPAMI) estimator and restorer, built from `DPCG` groups."""

from __future__ import annotations

from typing import Any, Literal, cast

from einops.layers.torch import Rearrange
from torch import Tensor, nn

from ..layers import DPCG
from ..layers.local_part import local_part
from .checks import check_code, check_estimator_inputs, check_image, check_sizes
from .registry import register_arch
from .upsample import Upsampler, make_upsampler

__all__ = ["EstimatorV2", "RestorerV2"]


@register_arch
class EstimatorV2(nn.Module):
    r"""DAN v2 estimator $E(\hat x, y) \to k$: predicts the full k x k kernel.

    ``head_LR`` 5x5 conv ``in_nc -> nf`` (basic path, LR); ``head_HR`` conv of size ``4s+1``, stride ``s``,
    padding ``2s`` on the SR image (condition path, brought to LR size); one `DPCG` (nf, nf, 3, 3,
    ``num_blocks``); ``tail`` = 3x3 conv ``nf -> tail_nf``, global average pooling, 1x1 conv
    ``tail_nf -> k²``, softmax over the k² taps:

    $$
    k = \mathrm{softmax}\big(W_t\,\mathrm{GAP}(W_3 * f)\big), \qquad \textstyle\sum k = 1
    $$

    Args:
        in_nc: image channels (3).
        nf: feature channels (32).
        num_blocks: DPCBs in the group (5).
        scale: SR factor ``s`` (1 gives the release's 5x5 stride-1 deblurring head).
        kernel_size: ``k`` (21).
        tail_nf: channels before pooling (64).
        residual: DPCG residual, ``"double"`` as released (see `DPCG`) or ``"add"``.
        input_norm: subtract each LR image's mean (over channels and pixels) from both inputs before the
            heads (off as released). The blur is a property of local contrast, not of brightness; removing the
            mean lets a small estimator learn image-specific kernels in a few hundred steps (the quickstart
            uses it), where the released estimator needs a long training to stop predicting the average kernel.

    Shape:
        sr: (B, in_nc, s h, s w); lr: (B, in_nc, h, w) -> kernel (B, k*k) (row-major taps, sums to 1)
    """

    output_kind: Literal["kernel", "code"] = "kernel"
    def __init__(
        self,
        in_nc: int = 3,
        nf: int = 32,
        num_blocks: int = 5,
        scale: int = 4,
        kernel_size: int = 21,
        tail_nf: int = 64,
        residual: str = "double",
        input_norm: bool = False,
    ) -> None:
        super().__init__()
        check_sizes("EstimatorV2", in_nc=in_nc, nf=nf, num_blocks=num_blocks, scale=scale, kernel_size=kernel_size,
                    tail_nf=tail_nf)
        self.in_nc = in_nc
        self.input_norm = bool(input_norm)
        self.scale = scale
        self.kernel_size = kernel_size
        self.head_LR = nn.Sequential(nn.Conv2d(in_nc, nf, 5, 1, 2))
        self.head_HR = nn.Sequential(nn.Conv2d(in_nc, nf, 4 * scale + 1, scale, 2 * scale))
        self.body = DPCG(nf, nf, 3, 3, num_blocks, residual=residual)
        self.tail = nn.Sequential(
            nn.Conv2d(nf, tail_nf, 3, 1, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(tail_nf, kernel_size * kernel_size, 1, 1, 0),
            nn.Softmax(dim=1),
        )
        self.flatten = Rearrange("b c 1 1 -> b c")

    def forward(self, sr: Tensor, lr: Tensor) -> Tensor:
        check_estimator_inputs("EstimatorV2", sr, lr, self.in_nc, self.scale)
        _, pool, conv, softmax = self.tail
        return self.flatten(softmax(conv(pool(self.pooled_trunk(sr, lr, self.lr_mean(lr))))))

    @local_part(lambda self: 2 + self.body.receptive_radius() + 1, pooled=True)
    def pooled_trunk(self, sr: Tensor, lr: Tensor, mean: Tensor | None = None) -> Tensor:
        """The spatially local part, $W_3 * f$: inputs less ``mean`` (`lr_mean`), heads, the DPCG and the tail's
        3x3 conv -> (B, tail_nf, h, w), of radius 2 (5x5 head; ``4s+1`` at stride ``s``) + the DPCG's + 1. The
        forward uses only its spatial mean, so a tiled run (`dan_blocks.layers.local_part`) computes it tile by
        tile and accumulates that mean: no LR-resolution map of the estimator is held whole."""
        if mean is not None:
            sr, lr = sr - mean, lr - mean
        feat, _ = self.body(self.head_LR(lr), self.head_HR(sr))
        return cast(Tensor, self.tail[0](feat))

    def lr_mean(self, lr: Tensor) -> Tensor | None:
        """The mean of each LR image (B, 1, 1, 1) when ``input_norm``, else None: what `pooled_trunk` subtracts from
        both inputs, computed once on the whole image (the hook to override for another centring)."""
        return lr.mean(dim=(1, 2, 3), keepdim=True) if self.input_norm else None


@register_arch
class RestorerV2(nn.Module):
    r"""DAN v2 restorer $R(y, c) \to \hat x$.

    ``head1`` 3x3 conv ``in_nc -> nf`` on the LR image; ``head2`` 1x1 conv ``C -> nf`` on the code viewed as
    (B, C, 1, 1) (no spatial stretch: the 1x1 condition path broadcasts; a per-pixel code map (B, C, h, w)
    works too); ``ng`` `DPCG` (nf, nf, 3, 1, ``nb``); ``fusion`` 3x3 conv; upsampler (a single conv at
    scale 1). No long skip, no clamp.

    Args:
        in_nc, out_nc: image channels (3).
        nf: feature channels (64).
        nb: DPCBs per group (10).
        ng: groups (5).
        scale: SR factor (1, 2, 3, 4, 8, ...).
        code_length: code length ``C`` (10).
        residual: DPCG residual, ``"double"`` as released or ``"add"``.
        fusion: how each DPCB fuses the condition into the features, a registered name or a class
            (`dan_blocks.layers.list_fusions()`; ``"dual_path"`` as released).
        fusion_kwargs: the fusion's arguments.

    Shape:
        lr: (B, in_nc, h, w); code: (B, C) or per pixel (B, C, h, w) -> sr (B, out_nc, s h, s w)
    """

    def __init__(
        self,
        in_nc: int = 3,
        out_nc: int = 3,
        nf: int = 64,
        nb: int = 10,
        ng: int = 5,
        scale: int = 4,
        code_length: int = 10,
        residual: str = "double",
        fusion: str | type[nn.Module] = "dual_path",
        fusion_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_sizes("RestorerV2", in_nc=in_nc, out_nc=out_nc, nf=nf, nb=nb, ng=ng, scale=scale,
                    code_length=code_length)
        self.in_nc = in_nc
        self.scale = scale
        self.code_length = code_length
        self.head1 = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.head2 = nn.Conv2d(code_length, nf, 1, 1, 0)
        self.body = nn.ModuleList(
            DPCG(nf, nf, 3, 1, nb, residual=residual, fusion=fusion, fusion_kwargs=fusion_kwargs) for _ in range(ng)
        )
        self.fusion = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upscale = make_upsampler(nf, out_nc, scale)
        self.as_map = Rearrange("b c -> b c 1 1")
        #: tiling protocol: the output is ``scale`` times the LR's size
        self.output_scale = scale

    def receptive_radius(self) -> int:
        """Tiling protocol: given its code (global, or a map on the LR grid) the restorer is spatially local:
        ``head1`` 1, the groups, ``fusion`` 1 and the upsampler, in LR pixels (104 as released)."""
        upscale = self.upscale
        if hasattr(upscale, "receptive_radius"):  # make_upsampler: an Upsampler, or one conv at scale 1
            up = cast(Upsampler, upscale).receptive_radius()
        else:
            up = cast(nn.Conv2d, upscale).kernel_size[0] // 2
        return 1 + sum(cast(DPCG, group).receptive_radius() for group in self.body) + 1 + up

    def forward(self, lr: Tensor, code: Tensor) -> Tensor:
        check_image("RestorerV2 lr", lr, self.in_nc)
        check_code("RestorerV2", code, lr, self.code_length)
        feat = self.head1(lr)
        cond = self.head2(self.as_map(code) if code.dim() == 2 else code)
        for group in self.body:
            feat, cond = group(feat, cond)
        return self.upscale(self.fusion(feat))
