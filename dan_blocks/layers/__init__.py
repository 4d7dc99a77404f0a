"""The papers' building blocks, written as their equations (needing only torch and einops): channel attention
and CRB (DAN v1), DPCB/DPCG (DAN v2), kernel stretch, the PCA kernel encoder, MAConv (MANet), SFT and the
SFT-conditioned RRDB (MANet's restorer).

Their fast exact variants live in `dan_blocks.fast` and are swapped in by `dan_blocks.optimize()`.
"""

from .channel_attention import ChannelAttention
from .crb import CRB
from .dpcb import DPCB, DPCG, RESIDUAL_MODES
from .kernel_stretch import KernelStretch, stretch_code
from .maconv import MAConv, MAConvBlock
from .pca import PCAEncoder, fit_pca_matrix
from .rrdb import RRDBSFT, ResidualDenseBlock
from .sft import SFTLayer

__all__ = [
    "CRB",
    "DPCB",
    "DPCG",
    "RESIDUAL_MODES",
    "RRDBSFT",
    "ChannelAttention",
    "KernelStretch",
    "MAConv",
    "MAConvBlock",
    "PCAEncoder",
    "ResidualDenseBlock",
    "SFTLayer",
    "fit_pca_matrix",
    "stretch_code",
]
