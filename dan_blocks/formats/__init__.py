"""File formats: the DAN release's checkpoints, MANet's, IKC's, DCLS's and DASR's, dan-blocks' own self-describing
model files and the PCA files (the shipped default matrices among them).

Networks live in `dan_blocks.archs`; this floor reads and writes them. Nothing here is imported by
``import dan_blocks.archs`` except the PCA files, which the presets are built from.
"""

from ..utils import CheckpointMismatchError
from .dasr_files import load_dasr_checkpoint, to_dasr_state_dict
from .dcls_files import load_dcls_checkpoint, to_dcls_state_dict
from .family_files import load_family_release
from .ikc_files import ikc_from_release, load_ikc_checkpoint, to_ikc_state_dict
from .manet_files import from_manet_state_dict, load_manet_checkpoint, to_manet_state_dict
from .model_files import model_metadata, save_model
from .official import (
    from_release_state_dict,
    infer_release_config,
    load_official_checkpoint,
    load_official_weights,
    read_state_dict,
    to_release_state_dict,
)
from .pca_files import available_default_pcas, default_pca

__all__ = [
    "CheckpointMismatchError",
    "available_default_pcas",
    "default_pca",
    "from_manet_state_dict",
    "from_release_state_dict",
    "ikc_from_release",
    "infer_release_config",
    "load_dasr_checkpoint",
    "load_dcls_checkpoint",
    "load_family_release",
    "load_ikc_checkpoint",
    "load_manet_checkpoint",
    "load_official_checkpoint",
    "load_official_weights",
    "model_metadata",
    "read_state_dict",
    "save_model",
    "to_dasr_state_dict",
    "to_dcls_state_dict",
    "to_ikc_state_dict",
    "to_manet_state_dict",
    "to_release_state_dict",
]
