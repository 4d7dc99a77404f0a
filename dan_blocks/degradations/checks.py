"""Argument checks shared by the degradation ops: finite numbers, ``[low, high]`` ranges, positive tensors.

Cheap by design (Python scalars, or one reduction over a small parameter tensor such as (B,) sigmas or a
(B, k, k) kernel), so they can run on every call without slowing a training loop.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import torch
from torch import Tensor

__all__ = ["check_finite", "check_integer", "check_number", "check_range", "parameter_tensor"]


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _numbers(value: Any) -> list[float] | None:
    """The numbers of a list / tuple / 1-D array of numbers (0-d tensors and arrays included), else None."""
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        return None
    if isinstance(value, Tensor) and value.dim() != 1:
        return None
    out = []
    for item in value:
        if isinstance(item, Tensor) or type(item).__module__ == "numpy":
            if getattr(item, "ndim", 1) != 0 or getattr(item, "dtype", None) in (torch.bool, bool):
                return None
            item = item.item()
        if not _is_number(item):
            return None
        out.append(float(item))
    return out


def check_number(value: Any, name: str, *, minimum: float | None = None, strict: bool = False) -> float:
    """``value`` as a float if it is a finite real number (``> minimum`` when ``strict``, else ``>= minimum``).

    Raises:
        TypeError: not a number (a string, None, a bool, a list ...), naming ``name``.
        ValueError: NaN, infinite or below ``minimum``, naming ``name``.
    """
    bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
    if not _is_number(value):
        raise TypeError(f"{name} must be a finite number{bound}, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not math.isfinite(number) or (
        minimum is not None and (number <= minimum if strict else number < minimum)
    ):
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return number


def check_integer(value: Any, name: str, minimum: int) -> int:
    """``value`` if it is an integer (not a bool) ``>= minimum``, else a TypeError / ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_range(
    value: Any, name: str, *, minimum: float | None = None, strict: bool = False
) -> tuple[float, float]:
    """A number ``v`` (-> ``(v, v)``) or a ``[low, high]`` pair of finite numbers with ``low <= high``.

    ``minimum`` / ``strict``: every bound must be ``>= minimum`` (``> minimum`` when ``strict``).

    Raises:
        TypeError: not a number nor a pair of numbers (a string such as ``'wide'`` is not read character by
            character), naming ``name``.
        ValueError: a pair of the wrong length, non-finite bounds, ``low > high`` or a bound below ``minimum``.
    """
    expected = f"{name} must be a number or [low, high] of numbers"
    floats = [float(value)] if _is_number(value) else _numbers(value)
    if floats is None:
        raise TypeError(f"{expected}, got {value!r}")
    if len(floats) != 2 and not _is_number(value):
        raise ValueError(f"{expected}, got {value!r} ({len(floats)} values)")
    if not all(map(math.isfinite, floats)):
        raise ValueError(f"{expected} (finite), got {value!r}")
    low, high = floats[0], floats[-1]
    if low > high:
        raise ValueError(f"{expected} with low <= high, got {value!r}")
    if minimum is not None and (low <= minimum if strict else low < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return low, high


def parameter_tensor(value: Any, name: str, device: torch.device | str | None = None) -> Tensor:
    """A float64 (N,) tensor of kernel parameters from a tensor, a number or a list of numbers.

    Raises:
        TypeError: anything else (a string, None ...), naming ``name``.
    """
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be a real tensor or number, got a {value.dtype} tensor")
        return value.to(dtype=torch.float64, device=device).reshape(-1)
    if not isinstance(value, (str, bytes, bool)) and value is not None:
        try:
            return torch.as_tensor(value, dtype=torch.float64, device=device).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            pass
    raise TypeError(f"{name} must be a tensor, a number or a list of numbers, got {value!r}")


def check_finite(value: Tensor, name: str, *, positive: bool = False) -> None:
    """Raise a ValueError naming ``name`` unless every element is finite (and > 0 when ``positive``).

    One reduction: meant for small parameter tensors ((B,) sigmas, (B, k, k) kernels). Only CPU tensors are
    checked: on an accelerator the check would stall the training loop on a host synchronisation per batch
    (there a NaN reaches the output, as in any torch op).
    """
    if value.device.type != "cpu":
        return
    ok = torch.isfinite(value)
    if positive:
        ok = ok & (value > 0)
    if not bool(ok.all()):
        bad = value[~ok].flatten()[:4].tolist()
        what = "finite and > 0" if positive else "finite"
        raise ValueError(f"{name} must be {what}, got {bad}{' ...' if int((~ok).sum()) > 4 else ''}")
