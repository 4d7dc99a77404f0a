"""Building blocks of DAN v1 (CRB + channel attention) and v2 (DPCB/DPCG), kernel stretch and PCA."""

from .channel_attention import ChannelAttention
from .crb import CRB
from .dpcb import DPCB, DPCG, RESIDUAL_MODES
from .kernel_stretch import KernelStretch, stretch_code
from .maconv import MAConv, MAConvBlock
from .pca import PCAEncoder, fit_pca_matrix
from .subpixel_border import folded_forward
from .subpixel_fold import FoldedChain, chain_geometry, fold_subpixel_chain

__all__ = [
    "CRB",
    "DPCB",
    "DPCG",
    "RESIDUAL_MODES",
    "ChannelAttention",
    "FoldedChain",
    "KernelStretch",
    "MAConv",
    "MAConvBlock",
    "PCAEncoder",
    "chain_geometry",
    "fit_pca_matrix",
    "fold_subpixel_chain",
    "folded_forward",
    "stretch_code",
]
