"""dan-blocks: DAN (Deep Alternating Network) blind super-resolution as typed PyTorch layers and BasicSR plug-ins.

Importing ``dan_blocks`` makes ``basicsr`` importable on current torch/torchvision (see
:mod:`dan_blocks.compat`) and registers every architecture, model, dataset and degradation into the
BasicSR registries (and into :data:`dan_blocks.degradations.DEGRADATION_REGISTRY`).
"""

from . import compat

compat.ensure_basicsr_importable()

from .layers import (  # noqa: E402
    CRB,
    DPCB,
    DPCG,
    ChannelAttention,
    KernelStretch,
    PCAEncoder,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "CRB",
    "DPCB",
    "DPCG",
    "ChannelAttention",
    "KernelStretch",
    "PCAEncoder",
    "__version__",
    "compat",
]
