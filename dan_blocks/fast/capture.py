"""`capture(model)`: super-resolution replayed from CUDA graphs, one per input shape (the GPU fast path).

DAN's forward is launch-bound on a GPU at the sizes it runs (thousands of small kernels per call): replaying a
captured CUDA graph removes the launch cost while running exactly the same kernels, so the numbers are eager's.
On other devices the wrapper runs the model eagerly (or through ``torch.compile`` when asked), with the same
contract.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["CapturedSR", "capture"]

_PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class CapturedSR(nn.Module):
    """``forward(lr) -> sr`` of ``model.super_resolve`` (or ``model(lr)`` for a module returning a tensor), replayed
    from a CUDA graph captured per (shape, dtype, device) of ``lr``.

    Contract (tested on the CPU through the same code path with capture off, and on CUDA where one is present):

    - the output equals the eager model's, bit for bit on CUDA (the same kernels replayed);
    - every call returns a tensor of its own (a copy of the graph's output buffer), so an earlier result is never
      overwritten by a later call — the failure of ``torch.compile(mode="reduce-overhead")`` it avoids;
    - a new input shape captures a new graph (kept: at most ``max_graphs``, oldest dropped);
    - weights changed in place are seen (the graph reads the parameters' memory); replacing a parameter object or
      moving the model needs `reset()`;
    - inference only: it runs under ``torch.inference_mode``.

    Args:
        model: a DAN (``super_resolve`` is used) or any module mapping an LR batch to a tensor; put it in eval mode
            and on its device first; `dan_blocks.optimize` it first if you like (``device="cuda"``).
        precision: ``"fp32"`` (TF32 as torch's settings allow), ``"bf16"`` or ``"fp16"`` autocast inside the graph;
            the output comes back in the input's dtype.
        channels_last: store the model's 4-d weights channels_last at the first call (values unchanged) and feed
            the graph channels_last inputs; default (None): for bf16/fp16 (tensor cores), not for fp32.
        compile: run the model through ``torch.compile`` (static shapes): on a GPU the captured graph then
            replays inductor's fused kernels (the CRB's gate, activation and residual in one kernel, not one
            each: fewer kernels per forward; not yet measured on a GPU, so off by default), elsewhere it replaces
            eager. The first call per shape compiles (seconds to minutes for a release-size model).
        max_graphs: how many input shapes keep a graph.
        warmup: eager calls on a side stream before each capture (cuDNN/cuBLAS choose their algorithms there).
    """

    def __init__(
        self,
        model: nn.Module,
        precision: str = "fp32",
        *,
        channels_last: bool | None = None,
        compile: bool = False,
        max_graphs: int = 8,
        warmup: int = 2,
    ) -> None:
        super().__init__()
        if precision not in _PRECISIONS:
            raise ValueError(f"capture precision must be one of {', '.join(_PRECISIONS)}, got {precision!r}")
        if max_graphs < 1 or warmup < 1:
            raise ValueError(f"capture needs max_graphs >= 1 and warmup >= 1, got {max_graphs} and {warmup}")
        self.model = model
        self.precision = precision
        self.channels_last = precision != "fp32" if channels_last is None else bool(channels_last)
        self.use_compile = compile  # not ``self.compile``: that would shadow nn.Module.compile
        self.max_graphs = max_graphs
        self.warmup = warmup
        self._graphs: dict[tuple[Any, ...], tuple[Any, Tensor, Tensor]] = {}
        self._compiled: Callable[[Tensor], Tensor] | None = None

    def _run(self, lr: Tensor) -> Tensor:
        if self.channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
        fn = getattr(self.model, "super_resolve", None)
        out = fn(lr) if callable(fn) else self.model(lr)
        if not isinstance(out, Tensor):
            raise TypeError(
                f"capture: the model must return a tensor (or have super_resolve), got {type(out).__name__}"
            )
        return out

    @contextlib.contextmanager
    def _autocast(self, device_type: str) -> Iterator[None]:
        dtype = _PRECISIONS[self.precision]
        if dtype is None:
            yield
            return
        with torch.autocast(device_type, dtype=dtype, cache_enabled=False):  # graphs must not capture a cache
            yield

    def reset(self) -> None:
        """Drop every captured graph (after moving the model or replacing parameter objects)."""
        self._graphs.clear()
        self._compiled = None

    def forward(self, lr: Tensor) -> Tensor:
        if not isinstance(lr, Tensor) or lr.dim() != 4:
            raise ValueError(f"capture expects an LR batch (B, C, H, W) tensor, got {getattr(lr, 'shape', lr)!r}")
        with torch.inference_mode():
            if lr.device.type != "cuda":
                return self._eager(lr)
            return self._replay(lr)

    def _runner(self) -> Callable[[Tensor], Tensor]:
        """``_run``, or its compiled form (made once) when ``compile`` was asked for."""
        if not self.use_compile:
            return self._run
        if self._compiled is None:
            self._compiled = torch.compile(self._run, dynamic=False)
        return self._compiled

    def _eager(self, lr: Tensor) -> Tensor:
        run = self._runner()
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        with self._autocast(lr.device.type):
            return run(lr).to(lr.dtype).contiguous()

    def _replay(self, lr: Tensor) -> Tensor:
        key = (tuple(lr.shape), lr.dtype, lr.device, lr.is_contiguous(memory_format=torch.channels_last))
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(lr)
            if len(self._graphs) >= self.max_graphs:
                self._graphs.pop(next(iter(self._graphs)))
            self._graphs[key] = entry
        graph, static_in, static_out = entry
        static_in.copy_(lr)
        graph.replay()
        return static_out.clone()

    def _capture(self, lr: Tensor) -> tuple[Any, Tensor, Tensor]:
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        static_in = lr.clone()
        run = self._runner()
        stream = torch.cuda.Stream(device=lr.device)
        stream.wait_stream(torch.cuda.current_stream(lr.device))
        with torch.cuda.stream(stream), self._autocast("cuda"):
            for _ in range(self.warmup):  # compiles here first when asked: nothing is compiled during capture
                run(static_in)
        torch.cuda.current_stream(lr.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), self._autocast("cuda"):
            static_out = run(static_in).to(lr.dtype).contiguous()
        return graph, static_in, static_out

    def extra_repr(self) -> str:
        return f"precision={self.precision!r}, graphs={len(self._graphs)}"


def capture(model: nn.Module, precision: str = "fp32", **kwargs: Any) -> CapturedSR:
    """`CapturedSR` of ``model`` (see there): CUDA graphs on a GPU, eager (or compiled) elsewhere."""
    return CapturedSR(model, precision, **kwargs)
