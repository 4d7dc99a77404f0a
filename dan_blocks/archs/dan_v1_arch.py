"""DAN v1 (NeurIPS 2020) estimator and restorer, built from `CRB` blocks."""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor, nn

from ..layers import CRB, StretchConcat, get_fusion
from .checks import check_code, check_estimator_inputs, check_image, check_sizes
from .registry import register_arch
from .upsample import make_upsampler

__all__ = ["EstimatorV1", "RestorerV1"]


@register_arch
class EstimatorV1(nn.Module):
    r"""DAN v1 estimator $E(\hat x, y) \to c$: predicts the PCA code directly.

    ``head_LR`` (1x1 conv ``in_nc -> nf``) on the LR image is the basic path; ``head_HR`` (9x9 conv, stride
    ``scale``, padding 4, ``in_nc -> nf``) maps the SR image to LR size and is the condition; ``num_blocks``
    `CRB` (nf, nf); ``out`` 3x3 conv ``nf -> code_length``; global average pooling.

    The release hard-codes ``code_length=10`` here (``Estimator.out`` has 10 channels) whatever the PCA's
    length, so only ``code_length=10`` models exist in the release.

    Args:
        in_nc: image channels (3).
        nf: feature channels (32 = the release's ``nf // 2``).
        num_blocks: CRBs (5).
        scale: SR factor ``s``.
        code_length: output code length ``C`` (10).
        hr_ksize: ``head_HR`` kernel size (9; padding ``hr_ksize // 2``).
        reduction: channel-attention squeeze ratio (16).

    Shape:
        sr: (B, in_nc, s h, s w); lr: (B, in_nc, h, w) -> code (B, C)
    """

    output_kind: Literal["kernel", "code"] = "code"

    def __init__(
        self,
        in_nc: int = 3,
        nf: int = 32,
        num_blocks: int = 5,
        scale: int = 4,
        code_length: int = 10,
        hr_ksize: int = 9,
        reduction: int = 16,
    ) -> None:
        super().__init__()
        check_sizes("EstimatorV1", in_nc=in_nc, nf=nf, num_blocks=num_blocks, scale=scale, code_length=code_length)
        self.in_nc = in_nc
        self.scale = scale
        self.code_length = code_length
        self.head_LR = nn.Conv2d(in_nc, nf, 1, 1, 0)
        self.head_HR = nn.Conv2d(in_nc, nf, hr_ksize, scale, hr_ksize // 2)
        self.body = nn.ModuleList(CRB(nf, nf, reduction) for _ in range(num_blocks))
        self.out = nn.Conv2d(nf, code_length, 3, 1, 1)

    def forward(self, sr: Tensor, lr: Tensor) -> Tensor:
        check_estimator_inputs("EstimatorV1", sr, lr, self.in_nc, self.scale)
        feat = self.head_LR(lr)
        cond = self.head_HR(sr)
        for block in self.body:
            feat, cond = block(feat, cond)
        return self.out(feat).mean(dim=(2, 3))


@register_arch
class RestorerV1(nn.Module):
    r"""DAN v1 restorer $R(y, c) \to \hat x$.

    ``head`` 3x3 conv ``in_nc -> nf``; ``nb`` `CRB` (nf, code_length), each concatenating the code
    stretched to the LR size; ``fusion`` 3x3 conv; `make_upsampler()`. No long
    skip, no clamp (as released).

    Args:
        in_nc, out_nc: image channels (3).
        nf: feature channels (64).
        nb: CRBs (40).
        scale: SR factor (1, 2, 3, 4, 8, ...).
        code_length: code length ``C`` (10).
        reduction: channel-attention squeeze ratio (16).
        fusion: how each CRB fuses the code into the features, a registered name or a class
            (`dan_blocks.layers.list_fusions()`; ``"stretch_concat"`` as released).
        fusion_kwargs: the fusion's arguments (``stretch_concat`` defaults to ``stretch_mode="error"`` here: a
            code map must be on the LR grid).

    Shape:
        lr: (B, in_nc, h, w); code: (B, C) or per pixel (B, C, h, w) -> sr (B, out_nc, s h, s w)
    """

    def __init__(
        self,
        in_nc: int = 3,
        out_nc: int = 3,
        nf: int = 64,
        nb: int = 40,
        scale: int = 4,
        code_length: int = 10,
        reduction: int = 16,
        fusion: str | type[nn.Module] = "stretch_concat",
        fusion_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_sizes("RestorerV1", in_nc=in_nc, out_nc=out_nc, nf=nf, nb=nb, scale=scale, code_length=code_length)
        self.in_nc = in_nc
        self.scale = scale
        self.code_length = code_length
        kwargs = dict(fusion_kwargs or {})
        if get_fusion(fusion) is StretchConcat:
            kwargs.setdefault("stretch_mode", "error")
        self.head = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.body = nn.ModuleList(
            CRB(nf, code_length, reduction, fusion=fusion, fusion_kwargs=kwargs) for _ in range(nb)
        )
        self.fusion = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upscale = make_upsampler(nf, out_nc, scale)

    def forward(self, lr: Tensor, code: Tensor) -> Tensor:
        check_image("RestorerV1 lr", lr, self.in_nc)
        check_code("RestorerV1", code, lr, self.code_length)
        feat = self.head(lr)
        for block in self.body:
            feat, code = block(feat, code)
        return self.upscale(self.fusion(feat))
