"""LeakyReLU fused into the preceding convolution (oneDNN post-op) for CPU inference."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .capture import is_capturing

__all__ = ["fused_conv_leaky_relu"]

_FUSABLE_DTYPES = (torch.float32, torch.bfloat16)


def _can_fuse(x: Tensor, conv: nn.Conv2d) -> bool:
    return (
        not is_capturing()
        and x.device.type == "cpu"
        and x.dtype in _FUSABLE_DTYPES
        and conv.weight.dtype == x.dtype
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding, tuple)
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
        and torch.backends.mkldnn.is_available()
        and bool(torch.backends.mkldnn.enabled)
    )


def fused_conv_leaky_relu(x: Tensor, conv: nn.Conv2d, negative_slope: float) -> Tensor:
    r"""$\delta(W * x + b)$ (LeakyReLU after ``conv``) in one oneDNN call when that is exact and possible.

    oneDNN applies the LeakyReLU as a post-op while the convolution output is still in cache (the same
    arithmetic as the two-step eager path, bit for bit). Used only for inference on the CPU in float32 or
    bfloat16 without autocast and outside graph capture; otherwise (training, CUDA, tracing, ONNX export)
    it is ``F.leaky_relu(conv(x))``, in place on the conv's fresh output for a slope >= 0 (the same numbers and
    gradients; autograd then saves one map instead of two).

    Shape: (B, C_in, H, W) -> (B, C_out, H', W') in the input's memory format.
    """
    if _can_fuse(x, conv):
        return torch.ops.mkldnn._convolution_pointwise(
            x, conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups,
            "leaky_relu", [negative_slope], "",
        )
    return F.leaky_relu(conv(x), negative_slope, inplace=negative_slope >= 0)  # in place: autograd keeps one map
