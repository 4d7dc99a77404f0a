"""The papers' building blocks, written as their equations (needing only torch and einops): channel attention
and CRB (DAN v1), DPCB/DPCG (DAN v2), kernel stretch, the PCA kernel encoder, MAConv (MANet), SFT and the
SFT-conditioned RRDB (MANet's restorer).

How a code enters the features is a swappable part: `dan_blocks.layers.fusion` (``fusion=`` a name or a class;
`list_fusions()`). Modules with an exact fast form carry a ``fast`` flag that `dan_blocks.optimize()` sets; the
fast forms are functions of `dan_blocks.ops`.
"""

from .channel_attention import ChannelAttention
from .crb import CRB
from .dpcb import DPCB, DPCG, RESIDUAL_MODES
from .fusion import (
    FUSION_REGISTRY,
    SFT,
    CodeAttention,
    DAConv,
    DualPath,
    FiLM,
    Fusion,
    SFTLayer,
    StretchConcat,
    create_fusion,
    get_fusion,
    list_fusions,
    register_fusion,
)
from .kernel_stretch import KernelStretch, stretch_code
from .maconv import MAConv, MAConvBlock
from .pca import PCAEncoder, fit_pca_matrix
from .rrdb import RRDBSFT, ResidualDenseBlock
from .two_conv import TwoConv

__all__ = [
    "CRB",
    "DPCB",
    "DPCG",
    "FUSION_REGISTRY",
    "RESIDUAL_MODES",
    "RRDBSFT",
    "SFT",
    "ChannelAttention",
    "CodeAttention",
    "DAConv",
    "DualPath",
    "FiLM",
    "Fusion",
    "KernelStretch",
    "MAConv",
    "MAConvBlock",
    "PCAEncoder",
    "ResidualDenseBlock",
    "SFTLayer",
    "StretchConcat",
    "TwoConv",
    "create_fusion",
    "fit_pca_matrix",
    "get_fusion",
    "list_fusions",
    "register_fusion",
    "stretch_code",
]
