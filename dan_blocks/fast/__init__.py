"""`optimize()`: the exact fast forms of the modules it knows, switched on per device, in place.

The fast forms belong to the modules themselves (a ``fast`` flag read by their one ``forward``); the work is
done by functions of `dan_blocks.ops`. Nothing here changes a class or switches anything globally.

`capture()` wraps a model for GPU inference: CUDA graphs replayed per input shape (eager elsewhere).
"""

from .capture import CapturedSR, capture
from .optimize import FAST_FORMS, fast_form_types, is_optimized, optimize, skipped_by_optimize

__all__ = ["FAST_FORMS", "CapturedSR", "capture", "fast_form_types", "is_optimized", "optimize", "skipped_by_optimize"]
