"""Infrastructure shared by every floor, one helper per job: registries, atomic writes, option-key checking,
checkpoint reading. Needs only the standard library and torch."""

from .checkpoints import (
    CheckpointMismatchError,
    CheckpointReadError,
    all_finite,
    first_non_finite,
    load_file,
    load_state_strict,
    read_checkpoint,
    state_dict_diff,
)
from .files import atomic_path, atomic_save, atomic_write_text
from .options import OptionKeyError, check_keys
from .registry import Registry

__all__ = [
    "CheckpointMismatchError",
    "CheckpointReadError",
    "OptionKeyError",
    "Registry",
    "all_finite",
    "atomic_path",
    "atomic_save",
    "atomic_write_text",
    "check_keys",
    "first_non_finite",
    "load_file",
    "load_state_strict",
    "read_checkpoint",
    "state_dict_diff",
]
