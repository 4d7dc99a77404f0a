"""dan-blocks in BasicSR: ``import dan_blocks.basicsr`` is the one line a BasicSR script needs.

Importing this package

1. makes ``import basicsr`` work on current torch/torchvision (`.compat`, every workaround with its
   reason);
2. registers dan-blocks' architectures (DAN, DANv1, DANv2, the estimators and restorers, and any registered
   later), ``DANModel`` and the datasets ``BlindSRHRDataset`` / ``BlindSRPairedDataset`` into BasicSR's
   registries (`.registration`).

Then option files name them as usual (``model_type: DANModel``, ``network_g: {type: DANv2, ...}``) and
``basicsr.train.train_pipeline(root)`` runs them, as in Real-ESRGAN or HAT. The ``dan-blocks`` CLI does this
import for you.
"""

from __future__ import annotations

from . import compat

compat.ensure_basicsr_importable()

from .blindsr_hr_dataset import BlindSRHRDataset  # noqa: E402
from .blindsr_paired_dataset import BlindSRPairedDataset  # noqa: E402
from .dan_model import DANModel  # noqa: E402
from .registration import register_all  # noqa: E402

register_all()

__all__ = ["BlindSRHRDataset", "BlindSRPairedDataset", "DANModel", "compat", "register_all"]
