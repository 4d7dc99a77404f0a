"""The DAN contract: what an estimator and a restorer must provide, and what DAN returns."""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol, runtime_checkable

from torch import Tensor

__all__ = ["OUTPUT_KINDS", "DANOutput", "EstimatorProtocol", "RestorerProtocol"]

#: the values an estimator's ``output_kind`` may take
OUTPUT_KINDS = ("kernel", "code")


@runtime_checkable
class RestorerProtocol(Protocol):
    r"""A restorer $R(y, c) \to \hat x$.

    Attributes:
        scale: the SR factor ``s`` (1 for deblurring).

    ``forward(lr, code)``:
        lr: (B, 3, h, w); code: a global code (B, C) or a per-pixel code map (B, C, h, w)
        -> sr: (B, 3, s h, s w).
    """

    scale: int

    def __call__(self, lr: Tensor, code: Tensor) -> Tensor: ...


@runtime_checkable
class EstimatorProtocol(Protocol):
    r"""An estimator $E(\hat x, y)$ giving a blur kernel or directly a code.

    Attributes:
        output_kind: ``"kernel"`` (DAN PCA-encodes the output) or ``"code"`` (used as the next code as is).

    ``forward(sr, lr)`` with sr: (B, 3, s h, s w), lr: (B, 3, h, w) returns, for ``"kernel"``:
    (B, k*k) or (B, k, k) (one kernel per image, each summing to 1 in DAN v2) or (B, k*k, h, w) (one kernel
    per LR pixel, channel index = row-major kernel tap); for ``"code"``: (B, C) or per pixel (B, C, h, w).
    """

    output_kind: Literal["kernel", "code"]

    def __call__(self, sr: Tensor, lr: Tensor) -> Tensor: ...


class DANOutput(NamedTuple):
    """What `DAN` returns (a NamedTuple, so torch.compile/export can flatten it).

    Attributes:
        sr: the final SR image (B, 3, s h, s w) (= ``srs[-1]``).
        srs: SR image of every iteration, oldest first.
        codes: the code estimated in every iteration, (B, C) or per pixel (B, C, h, w).
        kernels: the kernel of every iteration, (B, k, k) or per pixel (B, k*k, h, w): the estimate of a kernel
            estimator, or for a code estimator (DAN v1) the kernel its code stands for, reconstructed with the
            training distribution's mean kernel (`PCAEncoder.reconstruct`; a reconstruction, so its taps
            may dip slightly below zero).
    """

    sr: Tensor
    srs: list[Tensor]
    codes: list[Tensor]
    kernels: list[Tensor]
