"""``upscale``: super-resolve with any DAN-like model, optionally tiled exactly, after `dan_blocks.optimize()`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..fast import optimize as optimize_model
from .tiled import (
    DEFAULT_MAP_BUDGET,
    DEFAULT_MAX_HALO,
    TilingPlan,
    _tiling_copy,
    check_device,
    check_lr,
    only_final_sr,
    single_sr_copy,
    tiled,
)
from .tiling import check_size

__all__ = ["supports_tiling", "upscale"]


def supports_tiling(model: nn.Module) -> str | None:
    """``None`` when `upscale()` tiles every parameter-holding part of ``model``, else the reason why not
    (the modules that would run untiled and what they lack)."""
    plan = TilingPlan((1, 1), 1, 1, None)
    _tiling_copy(model, plan, type(model).__name__)
    if not plan.untiled:
        return None
    return f"{', '.join(plan.untiled)} declare no receptive_radius() (see dan_blocks.inference.tiled)"


def _check_lr(model: nn.Module, lr: Any) -> None:
    check_lr("upscale", lr)
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
    map_budget: int | None = DEFAULT_MAP_BUDGET,
    keep_srs: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Any:
    """Super-resolve ``lr`` with a DAN (or any model built from dan-blocks' modules); equals ``model(lr)``.

    Args:
        model: a `DAN` or any composition (put it in eval mode yourself; DAN has no
            train-only layers).
        lr: (B, 3, h, w) in [0, 1], on the model's device and in its dtype (no silent cast: a float64 image
            for a float32 model is a ValueError naming both dtypes; convert with ``lr.to(weight)``).
        tile_size: None for one untiled pass; else the LR tile side (any size). Each local unit (a conv, a
            DPCG, an upsampler, the MANet U-Net) is recomputed on its halo, so the cost grows as tiles shrink:
            see docs/inference.md.
        upsampler_tile: LR tile side for upsamplers (default ``min(tile_size, 128)``).
        output_device: where SR-resolution maps are stored (e.g. ``"cpu"`` to keep a GPU's memory for the
            computation).
        fallback: ``"warn"`` (parts that cannot be tiled run untiled, with a warning naming them) or
            ``"error"`` (raise TypeError instead).
        optimize: first apply `dan_blocks.optimize()` to ``model`` (in place, exact; idempotent).
        max_halo, map_budget: see `dan_blocks.inference.tiled.tiled()`: how wide units are split (faster) or
            run tile by tile whole (less memory: the default keeps no whole LR feature map over 256 MiB).
        keep_srs: False: a DAN's iterations write their SR images into one buffer and the result's ``srs`` holds
            only the final image (``[out.sr]``): peak memory two SR images instead of ``loop`` (what
            ``dan-blocks sr`` uses).
        progress: with ``tile_size``, called as ``progress(done, total)`` after each SR tile (per iteration).

    Returns:
        what ``model(lr)`` returns (a `DANOutput` for a DAN), equal up to float
        summation order (tested <= 1e-5 relative), computed without gradients.

    Raises:
        TypeError: ``model`` is not a module; a size that is not an integer (``2.5``, ``True``, ``"8"``) or not in
            range (``0``): `TileSizeError`, a TypeError and a ValueError at once.
        ValueError: naming the argument: ``lr`` not a 4-D floating tensor with pixels, with the model's channels,
            dtype and device; ``upsampler_tile`` without ``tile_size``; an ``output_device`` this machine does
            not have; an unknown ``fallback``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"upscale: model must be an nn.Module, got {type(model).__name__}")
    _check_lr(model, lr)
    tile_size = check_size("upscale", "tile_size", tile_size, allow_none=True)
    upsampler_tile = check_size("upscale", "upsampler_tile", upsampler_tile, allow_none=True)
    max_halo = check_size("upscale", "max_halo", max_halo, minimum=0, allow_none=True)
    map_budget = check_size("upscale", "map_budget", map_budget, minimum=0, allow_none=True)
    if upsampler_tile is not None and tile_size is None:
        raise ValueError("upscale: upsampler_tile is only used with tile_size (tiled inference); give tile_size too")
    if fallback not in ("warn", "error"):
        raise ValueError(f"upscale: fallback must be 'warn' or 'error', got {fallback!r}")
    if output_device is not None:
        output_device = check_device("upscale", "output_device", output_device)
    if optimize:
        optimize_model(model)
    if not isinstance(keep_srs, bool):
        raise TypeError(f"upscale: keep_srs must be True or False, got {keep_srs!r}")
    with torch.no_grad():
        if tile_size is None:
            return model(lr) if keep_srs else only_final_sr(single_sr_copy(model)(lr))
        reason = supports_tiling(model)
        if reason is not None and fallback == "error":
            raise TypeError(f"upscale: cannot tile every part exactly: {reason}")
        if reason is not None:
            warnings.warn(f"upscale: running parts untiled (exact, without the memory saving): {reason}", stacklevel=2)
        return tiled(
            model, lr, tile_size, upsampler_tile=upsampler_tile, output_device=output_device, max_halo=max_halo,
            map_budget=map_budget, warn_untiled=False, keep_srs=keep_srs, progress=progress,
        )
