"""Timing, FLOP and memory helpers shared by the benchmarks (not part of the package or the test suite)."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dan_blocks import optimize
from dan_blocks.archs import DAN, dan_v1, dan_v2

__all__ = ["BUILDERS", "build_pair", "conv_flops", "interleaved", "median_ms", "peak_cpu_memory", "relative_error",
           "saved_for_backward", "table"]

BUILDERS: dict[str, Callable[..., DAN]] = {"v1": dan_v1, "v2": dan_v2}


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall times of each callable, run round-robin ``repeats`` times after ``warmup`` rounds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def relative_error(a: Tensor, b: Tensor) -> float:
    """max |a - b| / max |b| (float64)."""
    a64, b64 = a.detach().double(), b.detach().double()
    return float((a64 - b64).abs().max() / b64.abs().max().clamp_min(1e-30))


def conv_flops(model: nn.Module, *inputs: Tensor, call: Callable[..., Any] | None = None) -> float:
    """2 x conv multiply-adds of one call, counted from the Conv2d modules and their output shapes.

    Runs a copy of ``model`` on the ``meta`` device; pass the plain model (every conv is a module call there).
    """
    meta = copy.deepcopy(model).to("meta")
    macs = 0

    def hook(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal macs
        assert isinstance(module, nn.Conv2d)
        kh, kw = module.kernel_size
        macs += out.numel() * (module.in_channels // module.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in meta.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        meta_inputs = [x.to("meta") for x in inputs]
        meta(*meta_inputs) if call is None else call(meta, *meta_inputs)
    for handle in handles:
        handle.remove()
    return 2.0 * macs


def peak_cpu_memory(fn: Callable[[], object]) -> int:
    """Peak bytes of tensors allocated (and not yet freed) during ``fn()``, from the profiler's memory trace."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    points = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage)
    current = peak = 0
    for _, delta in points:
        current += delta
        peak = max(peak, current)
    return peak


def build_pair(version: str, scale: int, seed: int = 0) -> tuple[DAN, DAN]:
    """(fast, plain) models with identical random weights: ``optimize(copy)`` and the plain model as built."""
    torch.manual_seed(seed)
    plain = BUILDERS[version](scale).eval()
    fast = optimize(copy.deepcopy(plain))
    return fast, plain


def median_ms(times: Sequence[float]) -> float:
    return 1e3 * statistics.median(times)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")
    print(flush=True)


def saved_for_backward(model: torch.nn.Module, fn: Callable[[], object]) -> int:
    """Bytes of the distinct storages autograd saves for backward during ``fn()`` (``model``'s weights excluded)."""
    weights = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}
    alive: list[Tensor] = []  # held until the end: a freed storage's address may be reused by a later one

    def pack(t: Tensor) -> Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weights and ptr not in seen:
            seen[ptr] = t.untyped_storage().nbytes()
            alive.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())
