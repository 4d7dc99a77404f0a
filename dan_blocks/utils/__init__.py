"""Infrastructure shared by every floor, one helper per job: registries, atomic writes, option-key checking,
checkpoint reading. Needs only the standard library and torch."""

from .checkpoints import CheckpointReadError, load_file, read_checkpoint
from .files import atomic_path, atomic_save, atomic_write_text
from .options import OptionKeyError, check_keys
from .registry import Registry

__all__ = [
    "CheckpointReadError",
    "OptionKeyError",
    "Registry",
    "atomic_path",
    "atomic_save",
    "atomic_write_text",
    "check_keys",
    "load_file",
    "read_checkpoint",
]
