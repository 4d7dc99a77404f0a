"""Optimised exact variants of the paper's blocks, applied once by `optimize()`.

Nothing here changes a plain block: `optimize()` swaps a module's class for its fast variant (same
parameters and ``state_dict``), in place. Each variant is tested against the plain block (<= 1e-5 relative).
"""

from .archs import FastDAN, FastEstimatorV2, FastRestorerV1, FastRestorerV2
from .crb import FastCRB, conv_with_constant_channels
from .dpcb import FastDPCB, FastDPCG
from .fused import fused_conv_leaky_relu
from .lr_memo import LRMemo
from .subpixel_fold import FoldedChain, fold_subpixel_chain
from .upsample import FoldedUpsampler
from .variants import FAST_VARIANTS, is_optimized, optimize

__all__ = [
    "FAST_VARIANTS",
    "FastCRB",
    "FastDAN",
    "FastDPCB",
    "FastDPCG",
    "FastEstimatorV2",
    "FastRestorerV1",
    "FastRestorerV2",
    "FoldedChain",
    "FoldedUpsampler",
    "LRMemo",
    "conv_with_constant_channels",
    "fold_subpixel_chain",
    "fused_conv_leaky_relu",
    "is_optimized",
    "optimize",
]
