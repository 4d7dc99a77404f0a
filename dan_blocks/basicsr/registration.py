"""Everything dan-blocks registers into BasicSR, in one place (run once by ``import dan_blocks.basicsr``).

- every architecture of dan-blocks' `ARCH_REGISTRY` (and every later registration
  there, a user's own estimators included) into BasicSR's ``ARCH_REGISTRY``;
- `DANModel` into ``MODEL_REGISTRY``;
- ``BlindSRHRDataset`` and ``BlindSRPairedDataset`` into ``DATASET_REGISTRY``.

BasicSR asserts on a second registration of a name, so a name already there (another project's class, or a
re-import) is left alone.
"""

from __future__ import annotations

from typing import Any

from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY

from ..archs.registry import ARCH_REGISTRY as DAN_ARCH_REGISTRY
from .blindsr_hr_dataset import BlindSRHRDataset
from .blindsr_paired_dataset import BlindSRPairedDataset
from .dan_model import DANModel

__all__ = ["register_all"]


def _register(registry: Any, name: str, obj: Any) -> None:
    if name not in registry:
        registry._do_register(name, obj)


def _mirror_arch(name: str, obj: Any) -> None:
    _register(ARCH_REGISTRY, name, obj)


_DONE: list[bool] = []


def register_all() -> None:
    """Register dan-blocks' architectures, model and datasets in BasicSR (idempotent)."""
    if _DONE:
        return
    DAN_ARCH_REGISTRY.add_listener(_mirror_arch)
    _register(MODEL_REGISTRY, "DANModel", DANModel)
    for dataset in (BlindSRHRDataset, BlindSRPairedDataset):
        _register(DATASET_REGISTRY, dataset.__name__, dataset)
    _DONE.append(True)
