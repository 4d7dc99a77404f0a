"""DAN v1/v2 architectures, the generic alternation, presets and the release's checkpoints.

Importing this package registers ``DAN``, ``DANv1``, ``DANv2``, ``EstimatorV1``, ``EstimatorV2``,
``RestorerV1`` and ``RestorerV2`` in BasicSR's ARCH_REGISTRY and ``dan_v1_x2`` ... ``dan_v2_x4`` in timm.
"""

from .dan_arch import (
    DAN,
    PCALike,
    SROnly,
    build_module,
    fast_path,
    fast_path_enabled,
    resolve_pca,
    set_fast_path,
)
from .dan_v1_arch import EstimatorV1, RestorerV1
from .dan_v2_arch import EstimatorV2, RestorerV2
from .lr_memo import LRMemo
from .manet_arch import MANetEstimator
from .official import (
    CheckpointMismatchError,
    from_release_state_dict,
    infer_release_config,
    load_official_checkpoint,
    load_official_weights,
    read_state_dict,
    to_release_state_dict,
)
from .presets import DANv1, DANv2, available_default_pcas, dan_v1, dan_v2, default_pca
from .protocols import DANOutput, EstimatorProtocol, RestorerProtocol
from .timm_models import TIMM_MODEL_NAMES, register_timm_models
from .upsample import Upsampler, make_upsampler

register_timm_models()

__all__ = [
    "DAN",
    "TIMM_MODEL_NAMES",
    "CheckpointMismatchError",
    "DANOutput",
    "DANv1",
    "DANv2",
    "EstimatorProtocol",
    "EstimatorV1",
    "EstimatorV2",
    "LRMemo",
    "MANetEstimator",
    "PCALike",
    "RestorerProtocol",
    "RestorerV1",
    "RestorerV2",
    "SROnly",
    "Upsampler",
    "available_default_pcas",
    "build_module",
    "dan_v1",
    "dan_v2",
    "default_pca",
    "fast_path",
    "fast_path_enabled",
    "from_release_state_dict",
    "infer_release_config",
    "load_official_checkpoint",
    "load_official_weights",
    "make_upsampler",
    "read_state_dict",
    "register_timm_models",
    "resolve_pca",
    "set_fast_path",
    "to_release_state_dict",
]
