"""BasicSR models: :class:`DANModel` (registered in BasicSR's MODEL_REGISTRY on import) and its helpers."""

from __future__ import annotations

from .dan_model import DANModel
from .kernel_utils import align_kernel, kernel_error, kernel_picture
from .options import TRAIN_KEYS, VAL_KEYS, check_keys

__all__ = ["TRAIN_KEYS", "VAL_KEYS", "DANModel", "align_kernel", "check_keys", "kernel_error", "kernel_picture"]
