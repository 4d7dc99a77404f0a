"""Every workaround for BasicSR / torchvision / torch version drift lives here, each with its reason.

Nothing in this module runs on import except :func:`ensure_basicsr_importable`, which ``dan_blocks``
calls once before it touches ``basicsr``. Each patch is applied only when the installed versions need it,
and each is covered by ``tests/test_compat.py``.

Workarounds
-----------
1. ``torchvision.transforms.functional_tensor`` (removed in torchvision 0.17) is imported by
   ``basicsr/data/degradations.py`` in basicsr 1.4.2, so ``import basicsr`` fails on every current
   torchvision. When the module is missing we register a stand-in exposing ``rgb_to_grayscale``.
2. A CUDA build of torchvision over a CPU-only torch (or any torch/torchvision pair built for each other's
   wrong version) fails deep inside torchvision with ``operator torchvision::nms does not exist``. We turn
   that into an :class:`IncompatibleTorchvisionError` naming both versions and the fix.
3. ``basicsr.data.degradations`` calls ``np.seterr(divide='ignore', invalid='ignore')`` on import, silently
   changing NumPy's global error handling for the whole process. We restore the caller's settings.
4. ``basicsr.archs.arch_util`` imports ``distutils`` (gone from the Python 3.12 stdlib). setuptools provides
   a shim; pyproject pulls setuptools in on Python >= 3.12 and :func:`ensure_basicsr_importable` says so
   clearly if it is missing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import types
from typing import Any

import numpy as np

__all__ = [
    "IncompatibleTorchvisionError",
    "ensure_basicsr_importable",
    "installed_version",
    "torchvision_functional_tensor_shim_needed",
]

_FUNCTIONAL_TENSOR = "torchvision.transforms.functional_tensor"


class IncompatibleTorchvisionError(ImportError):
    """torchvision cannot be imported against the installed torch."""


def installed_version(dist: str) -> str:
    """Version string of an installed distribution, or ``'not installed'``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _import_torchvision() -> types.ModuleType:
    """Import torchvision, translating a torch/torchvision build mismatch into a clear error (workaround 2)."""
    try:
        import torchvision
    except (RuntimeError, ImportError, OSError) as err:
        import torch

        cuda = torch.version.cuda or "none (CPU-only build)"
        raise IncompatibleTorchvisionError(
            f"torchvision {installed_version('torchvision')} cannot be imported with torch {torch.__version__} "
            f"(torch CUDA: {cuda}): {err}. The two must be built for each other; a CUDA torchvision does not "
            "load over a CPU-only torch. Fix: in a fresh virtual environment let pip resolve both together, "
            "e.g. `pip install --force-reinstall torch torchvision` from the same index, or install the "
            "torchvision release that matches your torch (see https://pytorch.org/get-started/previous-versions/)."
        ) from err
    return torchvision


def torchvision_functional_tensor_shim_needed() -> bool:
    """True when ``torchvision.transforms.functional_tensor`` is absent (torchvision >= 0.17)."""
    if _FUNCTIONAL_TENSOR in sys.modules:
        return False
    _import_torchvision()
    return importlib.util.find_spec(_FUNCTIONAL_TENSOR) is None


def _install_functional_tensor_shim() -> None:
    """Register a stand-in ``torchvision.transforms.functional_tensor`` (workaround 1)."""
    try:
        from torchvision.transforms import _functional_tensor as private
    except ImportError:  # pragma: no cover - very old or very new torchvision
        from torchvision.transforms import functional as private
    shim = types.ModuleType(_FUNCTIONAL_TENSOR)
    shim.__doc__ = "Stand-in registered by dan_blocks.compat for basicsr 1.4.2 (removed in torchvision 0.17)."
    shim.rgb_to_grayscale = private.rgb_to_grayscale  # type: ignore[attr-defined]
    sys.modules[_FUNCTIONAL_TENSOR] = shim


def _check_distutils() -> None:
    """Workaround 4: name the missing piece instead of failing inside basicsr."""
    if importlib.util.find_spec("distutils") is None:  # pragma: no cover - only Python >= 3.12 without setuptools
        raise ImportError(
            "basicsr 1.4.2 imports distutils, which Python 3.12 removed from the standard library. "
            "Fix: `pip install setuptools` (it provides the distutils shim)."
        )


def ensure_basicsr_importable() -> types.ModuleType:
    """Import ``basicsr`` on the installed torch/torchvision, patching only what is broken.

    Returns:
        The imported ``basicsr`` module.

    Raises:
        IncompatibleTorchvisionError: torchvision and torch are not builds of each other.
        ImportError: basicsr is missing or its import fails for a reason not handled here.
    """
    if "basicsr" in sys.modules and "basicsr.utils.registry" in sys.modules:
        return sys.modules["basicsr"]
    if torchvision_functional_tensor_shim_needed():
        _install_functional_tensor_shim()
    _check_distutils()
    saved: dict[str, Any] = np.geterr()
    try:
        basicsr = importlib.import_module("basicsr")
    finally:
        np.seterr(**saved)  # workaround 3
    return basicsr
