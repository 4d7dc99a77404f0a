"""DAN v1 / v2 presets with the release's configuration (the default PCA matrices: `.pca_files`)."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..formats.pca_files import PCA_DIR, available_default_pcas, default_pca
from .dan_arch import DAN, PCALike
from .dan_v1_arch import EstimatorV1, RestorerV1
from .dan_v2_arch import EstimatorV2, RestorerV2
from .registry import register_arch

__all__ = ["PCA_DIR", "DANv1", "DANv2", "available_default_pcas", "dan_v1", "dan_v2", "default_pca"]

def _pca(pca: PCALike | None, kernel_size: int, code_length: int, setting: int) -> PCALike:
    return default_pca(kernel_size, code_length, setting) if pca is None else pca


@register_arch
class DANv1(DAN):
    """DAN v1 preset (NeurIPS 2020): `RestorerV1` + `EstimatorV1`, release sizes by default.

    Args:
        scale: SR factor (2, 3, 4 released).
        kernel_size: PCA kernel size ``k`` (21 in setting 1).
        code_length: code length ``C`` (10; the release's estimator is fixed at 10).
        setting: 1 (isotropic) or 2 (anisotropic), picks the default PCA when ``pca`` is None.
        pca: anything `resolve_pca()` accepts, or None for `default_pca()`.
        loop: iterations (4). detach: as in `DAN`.
        in_nc: image channels (3). nf, nb: restorer width (64) and CRB count (40).
        est_nf, est_nb: estimator width (32) and CRB count (5). reduction: channel attention (16).
        fusion, fusion_kwargs: the restorer's fusion (`RestorerV1`; ``"stretch_concat"`` as released).
    """

    def __init__(
        self,
        scale: int = 4,
        kernel_size: int = 21,
        code_length: int = 10,
        setting: int = 1,
        pca: PCALike | None = None,
        loop: int = 4,
        detach: bool = True,
        in_nc: int = 3,
        nf: int = 64,
        nb: int = 40,
        est_nf: int = 32,
        est_nb: int = 5,
        reduction: int = 16,
        fusion: str | type[nn.Module] = "stretch_concat",
        fusion_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            RestorerV1(in_nc, in_nc, nf, nb, scale, code_length, reduction, fusion, fusion_kwargs),
            EstimatorV1(in_nc, est_nf, est_nb, scale, code_length, reduction=reduction),
            _pca(pca, kernel_size, code_length, setting),
            loop=loop,
            detach=detach,
            setting=setting,
        )
        self.setting = setting


@register_arch
class DANv2(DAN):
    """DAN v2 preset (TPAMI): `RestorerV2` + `EstimatorV2`, release sizes by default.

    Args:
        scale: SR factor (1 = deblurring, 2, 3, 4).
        kernel_size, code_length, setting, pca, loop, detach, in_nc: as `DANv1`
            (setting 2 x4 in the release: kernel_size=31, code_length=15).
        nf, nb, ng: restorer width (64), DPCBs per group (10), groups (5).
        est_nf, est_nb, est_tail_nf: estimator width (32), DPCBs (5), tail width (64).
        residual: DPCG residual, ``"double"`` (as released; needed for the released weights) or ``"add"``.
        est_input_norm: the estimator subtracts each LR image's mean first (off as released; see
            `EstimatorV2`).
        fusion, fusion_kwargs: the restorer's fusion (`RestorerV2`; ``"dual_path"`` as released).
    """

    def __init__(
        self,
        scale: int = 4,
        kernel_size: int = 21,
        code_length: int = 10,
        setting: int = 1,
        pca: PCALike | None = None,
        loop: int = 4,
        detach: bool = True,
        in_nc: int = 3,
        nf: int = 64,
        nb: int = 10,
        ng: int = 5,
        est_nf: int = 32,
        est_nb: int = 5,
        est_tail_nf: int = 64,
        residual: str = "double",
        est_input_norm: bool = False,
        fusion: str | type[nn.Module] = "dual_path",
        fusion_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            RestorerV2(in_nc, in_nc, nf, nb, ng, scale, code_length, residual, fusion, fusion_kwargs),
            EstimatorV2(in_nc, est_nf, est_nb, scale, kernel_size, est_tail_nf, residual, est_input_norm),
            _pca(pca, kernel_size, code_length, setting),
            loop=loop,
            detach=detach,
            setting=setting,
        )
        self.setting = setting
        self.residual = residual


def dan_v1(
    scale: int = 4,
    *,
    kernel_size: int = 21,
    code_length: int = 10,
    setting: int = 1,
    pca: PCALike | None = None,
    loop: int = 4,
    **sizes: Any,
) -> DANv1:
    """DAN v1 with the release's setting-1 configuration (``sizes``: see `DANv1`)."""
    return DANv1(scale, kernel_size, code_length, setting, pca, loop, **sizes)


def dan_v2(
    scale: int = 4,
    *,
    kernel_size: int = 21,
    code_length: int = 10,
    setting: int = 1,
    pca: PCALike | None = None,
    loop: int = 4,
    residual: str = "double",
    **sizes: Any,
) -> DANv2:
    """DAN v2 with the release's setting-1 configuration (``sizes``: see `DANv2`)."""
    return DANv2(scale, kernel_size, code_length, setting, pca, loop, residual=residual, **sizes)
