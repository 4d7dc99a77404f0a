"""Blind-SR data: built-in scikit-image photographs, image I/O, BasicSR datasets (HR patches, paired sets).

Importing this package registers ``BlindSRHRDataset`` and ``BlindSRPairedDataset`` in BasicSR's
``DATASET_REGISTRY``.
"""

from __future__ import annotations

from .blindsr_hr_dataset import BlindSRHRDataset
from .blindsr_paired_dataset import BlindSRPairedDataset
from .builtin import BUILTIN_SETS, is_builtin, load_builtin
from .div2krk import list_pairs, read_kernel
from .image_io import list_images, read_image, write_image

__all__ = [
    "BUILTIN_SETS",
    "BlindSRHRDataset",
    "BlindSRPairedDataset",
    "is_builtin",
    "list_images",
    "list_pairs",
    "load_builtin",
    "read_image",
    "read_kernel",
    "write_image",
]
