"""1x1 convolutions on a single pixel as matrix products, and the conv -> LeakyReLU -> conv chain in its fastest
exact form."""

from __future__ import annotations

from typing import TypeGuard

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .capture import is_capturing
from .fused import fused_conv_leaky_relu

__all__ = ["conv_lrelu_conv", "linear_1x1", "pointwise_gate"]


def linear_1x1(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """A 1x1 conv on a (B, C, 1, 1) map as a matrix product (B, C) @ W^T: no im2col for a single pixel."""
    weight = conv.weight.reshape(conv.weight.shape[0], conv.weight.shape[1])
    return F.linear(x.flatten(1), weight, conv.bias)[:, :, None, None]


def _one_by_one(conv: nn.Module) -> TypeGuard[nn.Conv2d]:
    return type(conv) is nn.Conv2d and conv.kernel_size == (1, 1) and conv.groups == 1 and conv.padding in (0, (0, 0))


def conv_lrelu_conv(x: Tensor, first: nn.Module, negative_slope: float, last: nn.Module) -> Tensor:
    r"""$W_2 * \delta(W_1 * x)$ with $\delta$ LeakyReLU: on a single pixel with 1x1 convs as matrix products,
    else with the LeakyReLU fused into the first conv where oneDNN can (CPU inference); same numbers as the chain."""
    if x.shape[-1] == 1 and x.shape[-2] == 1 and _one_by_one(first) and _one_by_one(last) and not is_capturing():
        return linear_1x1(F.leaky_relu(linear_1x1(x, first), negative_slope, inplace=negative_slope >= 0), last)
    if type(first) is nn.Conv2d:
        return last(fused_conv_leaky_relu(x, first, negative_slope))
    return last(F.leaky_relu(first(x), negative_slope))


def pointwise_gate(body: nn.Sequential, x: Tensor) -> Tensor:
    r"""The channel-attention gate $\sigma(W_2\,\delta(W_1\,x))$ of a pooled (B, C, 1, 1) map ``x`` with ``body`` =
    [1x1 conv, LeakyReLU, 1x1 conv, Sigmoid], its 1x1 convs as matrix products (no im2col for one pixel); the
    plain chain under graph capture or for another body. Shape: (B, C, 1, 1) -> (B, C, 1, 1)."""
    if len(body) != 4 or type(body[3]) is not nn.Sigmoid:
        return body(x)
    first, act, last = body[0], body[1], body[2]
    if is_capturing() or not _one_by_one(first) or not _one_by_one(last) or type(act) is not nn.LeakyReLU:
        return body(x)
    pooled = x.flatten(1)
    hidden = F.linear(pooled, first.weight.flatten(1), first.bias)
    hidden = F.leaky_relu(hidden, act.negative_slope, inplace=act.negative_slope >= 0)  # one saved map, not two
    return torch.sigmoid(F.linear(hidden, last.weight.flatten(1), last.bias))[:, :, None, None]
