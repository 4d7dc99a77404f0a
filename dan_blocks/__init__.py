"""dan-blocks: DAN (Deep Alternating Network) blind super-resolution as typed PyTorch layers and BasicSR plug-ins.

``import dan_blocks`` imports nothing heavy and changes nothing outside the package; its names (the layers, the
architectures and the alternation, `optimize()`, the degradations, `load_model()` and `upscale()`) are imported
on first use and need only torch, einops and numpy. BasicSR
registration is one explicit import, ``import dan_blocks.basicsr``; timm registration is ``import
dan_blocks.timm``.
"""

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name is imported on first use (below)
    from . import degradations, settings
    from ._version import __version__
    from .archs import (
        DAN,
        DANOutput,
        DANv1,
        DANv2,
        EstimatorV1,
        EstimatorV2,
        MANetEstimator,
        RestorerV1,
        RestorerV2,
        dan_v1,
        dan_v2,
        default_pca,
    )
    from .fast import capture, optimize
    from .formats import load_official_checkpoint, load_official_weights, save_model
    from .inference import load_model, upscale, upscale_image
    from .layers import (
        CRB,
        DPCB,
        DPCG,
        ChannelAttention,
        KernelStretch,
        MAConv,
        MAConvBlock,
        PCAEncoder,
    )

#: public name -> the submodule defining it. ``import dan_blocks`` imports none of them, so it (and
#: ``dan-blocks --help``) needs no torch; the first use of a name imports its submodule (PEP 562).
_LAZY: dict[str, str] = {
    "degradations": ".degradations",
    "settings": ".settings",
    **dict.fromkeys(
        ["DAN", "DANOutput", "DANv1", "DANv2", "EstimatorV1", "EstimatorV2", "MANetEstimator", "RestorerV1",
         "RestorerV2", "dan_v1", "dan_v2", "default_pca"],
        ".archs",
    ),
    **dict.fromkeys(["capture", "optimize"], ".fast"),
    **dict.fromkeys(["load_official_checkpoint", "load_official_weights", "save_model"], ".formats"),
    **dict.fromkeys(["load_model", "upscale", "upscale_image"], ".inference"),
    **dict.fromkeys(
        ["CRB", "DPCB", "DPCG", "ChannelAttention", "KernelStretch", "MAConv", "MAConvBlock", "PCAEncoder"],
        ".layers",
    ),
}


def __getattr__(name: str) -> Any:
    """Import a public name, or a submodule (``dan_blocks.archs``), on first use and keep it."""
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        value = module if _LAZY[name] == f".{name}" else getattr(module, name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "CRB",
    "DAN",
    "DPCB",
    "DPCG",
    "ChannelAttention",
    "DANOutput",
    "DANv1",
    "DANv2",
    "EstimatorV1",
    "EstimatorV2",
    "KernelStretch",
    "MAConv",
    "MAConvBlock",
    "MANetEstimator",
    "PCAEncoder",
    "RestorerV1",
    "RestorerV2",
    "__version__",
    "capture",
    "dan_v1",
    "dan_v2",
    "default_pca",
    "degradations",
    "load_model",
    "load_official_checkpoint",
    "load_official_weights",
    "optimize",
    "save_model",
    "settings",
    "upscale",
    "upscale_image",
]
