"""dan-blocks: DAN (Deep Alternating Network) blind super-resolution as typed PyTorch layers and BasicSR plug-ins.

``import dan_blocks`` needs only torch, einops and numpy and changes nothing outside the package: the layers,
the architectures and the alternation, `optimize()`, the degradations and `upscale()`. BasicSR
registration is one explicit import, ``import dan_blocks.basicsr``; timm registration is ``import
dan_blocks.timm``.
"""

from . import degradations, settings
from ._version import __version__
from .archs import (
    DAN,
    DANOutput,
    DANv1,
    DANv2,
    EstimatorV1,
    EstimatorV2,
    MANetEstimator,
    RestorerV1,
    RestorerV2,
    dan_v1,
    dan_v2,
    default_pca,
    load_official_checkpoint,
    load_official_weights,
    save_model,
)
from .fast import optimize
from .inference import load_model, upscale
from .layers import (
    CRB,
    DPCB,
    DPCG,
    ChannelAttention,
    KernelStretch,
    MAConv,
    MAConvBlock,
    PCAEncoder,
)

__all__ = [
    "CRB",
    "DAN",
    "DPCB",
    "DPCG",
    "ChannelAttention",
    "DANOutput",
    "DANv1",
    "DANv2",
    "EstimatorV1",
    "EstimatorV2",
    "KernelStretch",
    "MAConv",
    "MAConvBlock",
    "MANetEstimator",
    "PCAEncoder",
    "RestorerV1",
    "RestorerV2",
    "__version__",
    "dan_v1",
    "dan_v2",
    "default_pca",
    "degradations",
    "load_model",
    "load_official_checkpoint",
    "load_official_weights",
    "optimize",
    "save_model",
    "settings",
    "upscale",
]
