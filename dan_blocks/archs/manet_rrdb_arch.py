"""MANet's blind SR model (stage 3, "MANet+RRDB"): an LR-only MANet estimate, encoded per pixel, conditions an
RRDB-SFT restorer. A composition in the generic alternation (`DAN` with ``start="estimate"``)."""

from __future__ import annotations

from typing import Any

from .builders import PCALike
from .dan_arch import DAN
from .manet_arch import MANetEstimator
from .registry import register_arch
from .rrdb_sft_arch import RRDBSFTRestorer

__all__ = ["MANetRRDB"]


@register_arch
class MANetRRDB(DAN):
    r"""MANet stage 3: $c = \mathrm{enc}(\mathrm{MANet}(y))$ per pixel, $\hat x = R_{\mathrm{RRDB\text{-}SFT}}(y, c)$.

    The estimator (`MANetEstimator`, LR-only, replicate padding to a multiple of 8 as released) gives a kernel
    per LR pixel (B, k*k, h, w); the PCA encodes each pixel's kernel without centring,
    $c_{b,:,i,j} = \sum_t K_{b,t,i,j} P_{t,:}$ (MANet's ``pca_matrix``, held in the state dict); the
    `RRDBSFTRestorer` restores from the code map. ``loop=1`` is the released model (one estimate -> restore
    step); the estimate is LR-only, so further steps would repeat it.

    `dan_blocks.load_model` loads MANet's released ``stage3_MANet+RRDB_x4.pth`` into this class (its sizes read
    off the tensors); ``DANOutput.kernels[0]`` are the per-pixel kernels (softmax over the taps).

    Args:
        in_nc, out_nc: image channels (3).
        nf, nb, gc: restorer width (64), RRDB-SFT blocks (10) and growth channels (32).
        scale: SR factor (4).
        kernel_size: ``k`` (21).
        code_length: ``C`` (15).
        manet_nf, manet_nb: estimator width (128) and MAConv blocks per level (1).
        split: MAConv channel groups (2).
        pad_multiple: the estimator's replicate padding (8, as released).
        pca: a PCA spec (`resolve_pca`); default: a zero placeholder of size (k*k, C), filled from a checkpoint.
        loop: estimate -> restore steps (1).
        detach: detach the code fed to the restorer (True; MANet estimates under ``no_grad`` in stage 3).

    Shape:
        lr: (B, in_nc, h, w) -> `DANOutput` (sr: (B, out_nc, s h, s w); kernels: [(B, k*k, h, w)])
    """

    def __init__(
        self,
        in_nc: int = 3,
        out_nc: int = 3,
        nf: int = 64,
        nb: int = 10,
        gc: int = 32,
        scale: int = 4,
        kernel_size: int = 21,
        code_length: int = 15,
        manet_nf: int = 128,
        manet_nb: int = 1,
        split: int = 2,
        pad_multiple: int = 8,
        pca: PCALike | None = None,
        loop: int = 1,
        detach: bool = True,
    ) -> None:
        spec: Any = pca if pca is not None else {
            "kernel_size": kernel_size, "code_length": code_length, "placeholder": True,
        }
        super().__init__(
            restorer=RRDBSFTRestorer(in_nc, out_nc, nf, nb, gc, scale, code_length),
            estimator=MANetEstimator(
                in_nc, manet_nf, manet_nb, kernel_size, scale, use_sr=False, split=split, pad_multiple=pad_multiple
            ),
            pca=spec,
            loop=loop,
            detach=detach,
            start="estimate",
        )
