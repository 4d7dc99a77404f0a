"""Functional operations (torch only) behind the blocks' exact fast forms (kornia style: functions here, the
modules that use them in `dan_blocks.layers` and `dan_blocks.archs`).

Each function computes exactly what a plain formulation computes (up to float rounding) and steps aside under
graph capture where it specialises on shapes or layouts. Nothing here switches anything globally.
"""

from .capture import is_capturing
from .constant_channels import can_use_constant_channels, conv_with_constant_channels
from .fused import fused_conv_leaky_relu
from .pointwise import conv_lrelu_conv, linear_1x1, pointwise_gate
from .subpixel_border import folded_forward
from .subpixel_fold import FoldedChain, chain_geometry, fold_subpixel_chain
from .versions import tensor_state, tensor_version

__all__ = [
    "FoldedChain",
    "can_use_constant_channels",
    "chain_geometry",
    "conv_lrelu_conv",
    "conv_with_constant_channels",
    "fold_subpixel_chain",
    "folded_forward",
    "fused_conv_leaky_relu",
    "is_capturing",
    "linear_1x1",
    "pointwise_gate",
    "tensor_state",
    "tensor_version",
]
