"""`run_whole`: a chain of convolutions applied on the whole map, also inside a tiled run."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["run_whole"]


def run_whole(stack: nn.Sequential, x: Tensor) -> Tensor:
    """``stack(x)`` with its ``nn.Conv2d`` applied through their weights (``F.conv2d``) rather than called.

    For the global parts of an estimator (strided or unpadded convolutions followed by a pooling): such a chain
    is not spatially local, and its maps leave the LR grid, so `dan_blocks.inference.tiled` must not tile its
    convolutions one by one. The tiler wraps local modules (attribute ``inner``); the weights are read through
    the wrapper, so the result is the whole-map computation in every case."""
    for module in stack:
        conv = getattr(module, "inner", module)
        if isinstance(conv, nn.Conv2d):
            if conv.padding_mode != "zeros":
                x = conv(x)
            else:
                x = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        else:
            x = module(x)
    return x
