r"""The kernel of a chain of linear filters (KernelGAN's trick, DCLS's "dynamic deep linear kernel").

A chain of convolutions without non-linearities is one convolution; its kernel is the chain's impulse response.
DCLS feeds an all-ones 1x1 input in every input channel, zero-padded by ``k - 1``, through the per-sample filters
(``F.conv2d``: cross-correlation), flips the result in both axes (a convolution kernel), averages the output
channels and divides by the sum: $K = \mathrm{flip}(\mathrm{mean}_c\,h) / \sum \mathrm{flip}(\mathrm{mean}_c\,h)$.
Not a softmax: taps may be negative, and a sum near zero makes the kernel large.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["chain_kernel_size", "linear_chain_kernel"]


def chain_kernel_size(filter_sizes: Sequence[int]) -> int:
    """$k = 1 + \\sum_i (f_i - 1)$: the support of the chain."""
    return 1 + sum(int(f) - 1 for f in filter_sizes)


def linear_chain_kernel(filters: Sequence[Tensor], batch: int, in_nc: int, normalise: bool = True) -> Tensor:
    """The normalised kernel (B, 1, k, k) of per-sample filter chains.

    Args:
        filters: per-sample weights stacked over the batch as grouped-conv weights: the first
            (B * G, in_nc, f0, f0), the middle ones (B * G, G, f, f), the last (B * in_nc, G, fn, fn).
        batch: B. in_nc: channels of the impulse (3 in DCLS).
        normalise: divide by the sum (DCLS); False gives the channel-mean impulse response (flipped).
    """
    ksize = chain_kernel_size([int(w.shape[-1]) for w in filters])
    delta = torch.ones(1, batch * in_nc, 1, 1, dtype=filters[0].dtype, device=filters[0].device)
    out = F.conv2d(delta, filters[0], padding=ksize - 1, groups=batch)
    for weight in filters[1:]:
        out = F.conv2d(out, weight, groups=batch)
    kernel = out.reshape(batch, in_nc, ksize, ksize).flip([2, 3]).mean(dim=1, keepdim=True)
    if normalise:
        kernel = kernel / kernel.sum(dim=(2, 3), keepdim=True)
    return kernel
