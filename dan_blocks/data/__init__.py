"""All file I/O of blind-SR data: images, the built-in scikit-image photographs, DIV2KRK folders, test-set files.

The BasicSR datasets built on these live in `dan_blocks.basicsr`.
"""

from __future__ import annotations

from .builtin import BUILTIN_SETS, is_builtin, load_builtin
from .div2krk import list_pairs, read_kernel
from .image_io import list_images, read_image, write_image
from .testsets import PROTOCOLS, make_testset

__all__ = [
    "BUILTIN_SETS",
    "PROTOCOLS",
    "is_builtin",
    "list_images",
    "list_pairs",
    "load_builtin",
    "make_testset",
    "read_image",
    "read_kernel",
    "write_image",
]
