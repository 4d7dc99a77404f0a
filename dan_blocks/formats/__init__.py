"""File formats: the DAN release's checkpoints, MANet's, dan-blocks' own self-describing model files and the
PCA files (the shipped default matrices among them).

Networks live in `dan_blocks.archs`; this floor reads and writes them. Nothing here is imported by
``import dan_blocks.archs`` except the PCA files, which the presets are built from.
"""

from ..utils import CheckpointMismatchError
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
    "infer_release_config",
    "load_manet_checkpoint",
    "load_official_checkpoint",
    "load_official_weights",
    "model_metadata",
    "read_state_dict",
    "save_model",
    "to_manet_state_dict",
    "to_release_state_dict",
]
