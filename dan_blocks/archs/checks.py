"""Input checks shared by the estimators and restorers (clear errors instead of conv tracebacks).

Shapes are formatted with ``list`` so that the checks stay TorchScript-compatible (MANetEstimator scripts).
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["check_code", "check_estimator_inputs", "check_image", "check_sizes"]


def check_image(name: str, x: Tensor, channels: int) -> None:
    """``x`` must be (B, channels, H, W)."""
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} must be (B, {channels}, H, W), got shape {list(x.shape)}")


def check_estimator_inputs(owner: str, sr: Tensor, lr: Tensor, channels: int, scale: int) -> None:
    """sr (B, channels, s h, s w) and lr (B, channels, h, w) with ``s = scale``."""
    check_image(f"{owner} sr", sr, channels)
    check_image(f"{owner} lr", lr, channels)
    if sr.shape[-2] != scale * lr.shape[-2] or sr.shape[-1] != scale * lr.shape[-1]:
        raise ValueError(
            f"{owner}: the SR image {list(sr.shape[-2:])} is not {scale}x the LR image {list(lr.shape[-2:])}"
        )


def check_code(owner: str, code: Tensor, lr: Tensor, code_length: int) -> None:
    """A global (B, C) or per-pixel (B, C, h, w) code for the LR batch ``lr``."""
    if code.dim() not in (2, 4) or code.shape[0] != lr.shape[0] or code.shape[1] != code_length:
        raise ValueError(
            f"{owner} code must be (B={lr.shape[0]}, {code_length}) or (B, {code_length}, h, w), "
            f"got shape {list(code.shape)}"
        )


def check_sizes(owner: str, **sizes: int) -> None:
    """Each size (channels, blocks, scale, code length) an integer >= 1, else a ``ValueError`` naming it (before any
    layer is built: ``nf=0`` would otherwise give zero-element weights and a torch error far inside)."""
    bad = [f"{k}={v!r}" for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1]
    if bad:
        raise ValueError(f"{owner} sizes must be integers >= 1, got {', '.join(bad)}")
