"""DAN v1 (NeurIPS 2020) estimator and restorer, built from :class:`~dan_blocks.layers.CRB` blocks."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from ..layers import CRB
from .registry import register_arch
from .upsample import make_upsampler

__all__ = ["EstimatorV1", "RestorerV1"]


def _check_image(name: str, x: Tensor, channels: int) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} must be (B, {channels}, H, W), got shape {tuple(x.shape)}")


@register_arch
class EstimatorV1(nn.Module):
    r"""DAN v1 estimator :math:`E(\hat x, y) \to c`: predicts the PCA code directly.

    ``head_LR`` (1x1 conv ``in_nc -> nf``) on the LR image is the basic path; ``head_HR`` (9x9 conv, stride
    ``scale``, padding 4, ``in_nc -> nf``) maps the SR image to LR size and is the condition; ``num_blocks``
    :class:`CRB` (nf, nf); ``out`` 3x3 conv ``nf -> code_length``; global average pooling.

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
        self.in_nc = in_nc
        self.scale = scale
        self.code_length = code_length
        self.head_LR = nn.Conv2d(in_nc, nf, 1, 1, 0)
        self.head_HR = nn.Conv2d(in_nc, nf, hr_ksize, scale, hr_ksize // 2)
        self.body = nn.ModuleList(CRB(nf, nf, reduction) for _ in range(num_blocks))
        self.out = nn.Conv2d(nf, code_length, 3, 1, 1)

    def forward(self, sr: Tensor, lr: Tensor) -> Tensor:
        _check_image("EstimatorV1 sr", sr, self.in_nc)
        _check_image("EstimatorV1 lr", lr, self.in_nc)
        if sr.shape[-2] != self.scale * lr.shape[-2] or sr.shape[-1] != self.scale * lr.shape[-1]:
            raise ValueError(
                f"EstimatorV1: the SR image {tuple(sr.shape[-2:])} is not {self.scale}x the LR image "
                f"{tuple(lr.shape[-2:])}"
            )
        feat = self.head_LR(lr)
        cond = self.head_HR(sr)
        for block in self.body:
            feat, cond = block(feat, cond)
        return self.out(feat).mean(dim=(2, 3))


@register_arch
class RestorerV1(nn.Module):
    r"""DAN v1 restorer :math:`R(y, c) \to \hat x`.

    ``head`` 3x3 conv ``in_nc -> nf``; ``nb`` :class:`CRB` (nf, code_length), each concatenating the code
    stretched to the LR size; ``fusion`` 3x3 conv; :func:`~dan_blocks.archs.upsample.make_upsampler`. No long
    skip, no clamp (as released).

    Args:
        in_nc, out_nc: image channels (3).
        nf: feature channels (64).
        nb: CRBs (40).
        scale: SR factor (1, 2, 3, 4, 8, ...).
        code_length: code length ``C`` (10).
        reduction: channel-attention squeeze ratio (16).

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
    ) -> None:
        super().__init__()
        self.in_nc = in_nc
        self.scale = scale
        self.code_length = code_length
        self.head = nn.Conv2d(in_nc, nf, 3, 1, 1)
        self.body = nn.ModuleList(CRB(nf, code_length, reduction, stretch_mode="error") for _ in range(nb))
        self.fusion = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upscale = make_upsampler(nf, out_nc, scale)

    def forward(self, lr: Tensor, code: Tensor) -> Tensor:
        _check_image("RestorerV1 lr", lr, self.in_nc)
        if code.dim() not in (2, 4) or code.shape[0] != lr.shape[0] or code.shape[1] != self.code_length:
            raise ValueError(
                f"RestorerV1 code must be (B={lr.shape[0]}, {self.code_length}) or "
                f"(B, {self.code_length}, h, w), "
                f"got shape {tuple(code.shape)}"
            )
        feat = self.head(lr)
        for block in self.body:
            feat, code = block(feat, code)
        return self.upscale(self.fusion(feat))
