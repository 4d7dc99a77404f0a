"""Everything dan-blocks registers into BasicSR, in one place (run once by ``import dan_blocks.basicsr``).

- every architecture of dan-blocks' `ARCH_REGISTRY` (and every later registration
  there, a user's own estimators included) into BasicSR's ``ARCH_REGISTRY``;
- `DANModel` into ``MODEL_REGISTRY``;
- ``BlindSRHRDataset`` and ``BlindSRPairedDataset`` into ``DATASET_REGISTRY``.

BasicSR asserts on a second registration of a name. A name BasicSR already gives to *another* architecture is
refused with a message naming both classes (a user's ``RRDBNet`` would otherwise stay BasicSR's in option files
while ``build_arch`` builds the user's), unless it was registered with ``register_arch(..., replace=True)``; the
same object registered again (a re-import) is left alone.
"""

from __future__ import annotations

from typing import Any

from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY

from ..archs.registry import ARCH_REGISTRY as DAN_ARCH_REGISTRY
from ..archs.registry import replaces_basicsr
from .blindsr_hr_dataset import BlindSRHRDataset
from .blindsr_paired_dataset import BlindSRPairedDataset
from .dan_model import DANModel
from .dasr_model import DASRModel
from .dcls_model import DCLSModel
from .ikc_model import IKCModel

__all__ = ["register_all"]


def _register(registry: Any, name: str, obj: Any) -> None:
    if name not in registry:
        registry._do_register(name, obj)


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _mirror_arch(name: str, obj: Any) -> None:
    if name not in ARCH_REGISTRY:
        ARCH_REGISTRY._do_register(name, obj)
        return
    held = ARCH_REGISTRY.get(name)
    if held is obj:
        return
    if replaces_basicsr(name):
        ARCH_REGISTRY._obj_map[name] = obj  # asked for: option files now build the dan-blocks class
        return
    raise ValueError(
        f"architecture name {name!r} is taken in BasicSR's ARCH_REGISTRY by {_qualified(held)}; dan-blocks' "
        f"{_qualified(obj)} cannot be mirrored there under the same name. Rename the class, or register it with "
        "dan_blocks.archs.register_arch(replace=True) to make option files build it instead"
    )


_DONE: list[bool] = []


def register_all() -> None:
    """Register dan-blocks' architectures, model and datasets in BasicSR (idempotent)."""
    if _DONE:
        return
    DAN_ARCH_REGISTRY.add_listener(_mirror_arch)
    _register(MODEL_REGISTRY, "DANModel", DANModel)
    _register(MODEL_REGISTRY, "DASRModel", DASRModel)  # DASR's contrastive and joint stages
    _register(MODEL_REGISTRY, "IKCModel", IKCModel)  # IKC's SFTMD stage and predictor/corrector stage
    _register(MODEL_REGISTRY, "DCLSModel", DCLSModel)  # DCLS with its kernel target
    for dataset in (BlindSRHRDataset, BlindSRPairedDataset):
        _register(DATASET_REGISTRY, dataset.__name__, dataset)
    _DONE.append(True)
