"""Building blocks of DAN v1 (CRB + channel attention) and v2 (DPCB/DPCG), kernel stretch and PCA."""

from .channel_attention import ChannelAttention
from .crb import CRB
from .dpcb import DPCB, DPCG, RESIDUAL_MODES
from .kernel_stretch import KernelStretch, stretch_code
from .maconv import MAConv, MAConvBlock
from .pca import PCAEncoder, fit_pca_matrix

__all__ = [
    "CRB",
    "DPCB",
    "DPCG",
    "RESIDUAL_MODES",
    "ChannelAttention",
    "KernelStretch",
    "MAConv",
    "MAConvBlock",
    "PCAEncoder",
    "fit_pca_matrix",
    "stretch_code",
]
