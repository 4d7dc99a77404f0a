"""dan-blocks: DAN (Deep Alternating Network) blind super-resolution as typed PyTorch layers and BasicSR plug-ins.

Importing ``dan_blocks`` makes ``basicsr`` importable on current torch/torchvision (see
:mod:`dan_blocks.compat`) and registers every architecture, model, dataset and degradation into the
BasicSR registries (and into :data:`dan_blocks.degradations.DEGRADATION_REGISTRY`).
"""

from . import compat

compat.ensure_basicsr_importable()

from . import data, degradations  # noqa: E402
from .archs import (  # noqa: E402
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
)
from .archs.dan_arch import fast_path_enabled, set_fast_path  # noqa: E402
from .inference import upscale  # noqa: E402
from .layers import (  # noqa: E402
    CRB,
    DPCB,
    DPCG,
    ChannelAttention,
    KernelStretch,
    MAConv,
    MAConvBlock,
    PCAEncoder,
)
from .models import DANModel  # noqa: E402

__version__ = "0.1.0.dev0"

__all__ = [
    "CRB",
    "DAN",
    "DPCB",
    "DPCG",
    "ChannelAttention",
    "DANModel",
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
    "compat",
    "dan_v1",
    "dan_v2",
    "data",
    "default_pca",
    "degradations",
    "fast_path_enabled",
    "load_official_checkpoint",
    "load_official_weights",
    "set_fast_path",
    "upscale",
]
