"""``upscale``: super-resolve with any DAN-like model, optionally tiled exactly, after `dan_blocks.optimize()`."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from ..fast import optimize as optimize_model
from .tiled import DEFAULT_MAX_HALO, TilingPlan, _tiling_copy, tiled

__all__ = ["supports_tiling", "upscale"]


def _check_size(name: str, value: Any, allow_none: bool, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TypeError(
            f"upscale: {name} must be an integer >= {minimum}{' or None' if allow_none else ''}, got {value!r}"
        )


def supports_tiling(model: nn.Module) -> str | None:
    """``None`` when `upscale()` tiles every parameter-holding part of ``model``, else the reason why not
    (the modules that would run untiled and what they lack)."""
    plan = TilingPlan((1, 1), 1, 1, None)
    _tiling_copy(model, plan, type(model).__name__)
    if not plan.untiled:
        return None
    return f"{', '.join(plan.untiled)} declare no receptive_radius() (see dan_blocks.inference.tiled)"


def _check_lr(model: nn.Module, lr: Any) -> None:
    if not isinstance(lr, Tensor) or lr.dim() != 4:
        shape = tuple(lr.shape) if isinstance(lr, Tensor) else type(lr).__name__
        raise ValueError(f"upscale: lr must be a (B, C, h, w) tensor, got {shape}")
    if lr.shape[0] < 1 or lr.shape[-1] < 1 or lr.shape[-2] < 1:
        raise ValueError(f"upscale: lr must hold at least one pixel of one image, got shape {tuple(lr.shape)}")
    in_nc = getattr(getattr(model, "restorer", None), "in_nc", None)
    if in_nc is not None and lr.shape[1] != in_nc:
        raise ValueError(f"upscale: the model expects {in_nc}-channel images, got lr of shape {tuple(lr.shape)}")
    if not lr.is_floating_point():
        raise ValueError(f"upscale: lr must be a floating tensor in [0, 1], got {lr.dtype}")
    weight = next(model.parameters(), None)
    if weight is not None and (weight.dtype != lr.dtype or weight.device != lr.device):
        raise ValueError(
            f"upscale: lr is {lr.dtype} on {lr.device} but the model's weights are {weight.dtype} on "
            f"{weight.device}; convert one of them (e.g. lr.to(weight)) or use torch.autocast"
        )


def upscale(
    model: nn.Module,
    lr: Tensor,
    tile_size: int | None = None,
    *,
    upsampler_tile: int | None = None,
    output_device: torch.device | str | None = None,
    fallback: str = "warn",
    optimize: bool = True,
    max_halo: int | None = DEFAULT_MAX_HALO,
) -> Any:
    """Super-resolve ``lr`` with a DAN (or any model built from dan-blocks' modules); equals ``model(lr)``.

    Args:
        model: a `DAN` or any composition (put it in eval mode yourself; DAN has no
            train-only layers).
        lr: (B, 3, h, w) in [0, 1], on the model's device and in its dtype.
        tile_size: None for one untiled pass; else the LR tile side (any size). Each local unit (a conv, a
            DPCG, an upsampler, the MANet U-Net) is recomputed on its halo, so the cost grows as tiles shrink:
            see docs/inference.md.
        upsampler_tile: LR tile side for upsamplers (default ``min(tile_size, 128)``).
        output_device: where SR-resolution maps are stored (e.g. ``"cpu"`` to keep a GPU's memory for the
            computation).
        fallback: ``"warn"`` (parts that cannot be tiled run untiled, with a warning naming them) or
            ``"error"`` (raise TypeError instead).
        optimize: first apply `dan_blocks.optimize()` to ``model`` (in place, exact; idempotent).

    Returns:
        what ``model(lr)`` returns (a `DANOutput` for a DAN), equal up to float
        summation order (tested <= 1e-5 relative), computed without gradients.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"upscale: model must be an nn.Module, got {type(model).__name__}")
    _check_lr(model, lr)
    _check_size("tile_size", tile_size, allow_none=True)
    _check_size("upsampler_tile", upsampler_tile, allow_none=True)
    _check_size("max_halo", max_halo, allow_none=True, minimum=0)
    if fallback not in ("warn", "error"):
        raise ValueError(f"upscale: fallback must be 'warn' or 'error', got {fallback!r}")
    if output_device is not None:
        try:
            output_device = torch.device(output_device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"upscale: output_device {output_device!r} is not a device: {err}") from None
    if optimize:
        optimize_model(model)
    with torch.no_grad():
        if tile_size is None:
            return model(lr)
        reason = supports_tiling(model)
        if reason is not None and fallback == "error":
            raise TypeError(f"upscale: cannot tile every part exactly: {reason}")
        if reason is not None:
            warnings.warn(f"upscale: running parts untiled (exact, without the memory saving): {reason}", stacklevel=2)
        return tiled(
            model, lr, tile_size, upsampler_tile=upsampler_tile, output_device=output_device, max_halo=max_halo,
            warn_untiled=False,
        )
