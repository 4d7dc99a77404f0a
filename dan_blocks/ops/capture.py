"""Whether a graph is being captured: fast paths that specialise on shapes or memory layout step aside then."""

from __future__ import annotations

import torch

__all__ = ["is_capturing"]


def is_capturing() -> bool:
    """True while a graph is being captured (jit trace/script, torch.compile/export, ONNX export)."""
    return bool(
        torch.compiler.is_compiling()
        or torch.jit.is_scripting()
        or torch.jit.is_tracing()
        or torch.onnx.is_in_onnx_export()
    )
