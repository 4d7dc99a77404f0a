"""``import dan_blocks.timm`` registers the presets in timm: ``timm.create_model("dan_v2_x4")`` and friends.

Nothing downloads at run time, so ``pretrained=True`` is an error pointing at
`load_official_checkpoint()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .archs.presets import dan_v1, dan_v2

__all__ = ["TIMM_MODEL_NAMES", "register_timm_models"]

#: the names registered in timm
TIMM_MODEL_NAMES = tuple(f"dan_v{v}_x{s}" for v in (1, 2) for s in (2, 3, 4))

# keyword arguments timm.create_model may pass that the presets do not take
_TIMM_ONLY = (
    "pretrained_cfg",
    "pretrained_cfg_overlay",
    "cache_dir",
    "features_only",
    "out_indices",
    "num_classes",
    "in_chans",
    "drop_rate",
    "drop_path_rate",
    "drop_block_rate",
    "global_pool",
    "scriptable",
    "exportable",
    "no_jit",
    "checkpoint_path",
)


def _entrypoint(name: str, build: Callable[..., nn.Module], scale: int) -> Callable[..., nn.Module]:
    def create(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        if pretrained:
            raise ValueError(
                f"timm model {name}: pretrained=True is not supported (dan-blocks downloads nothing). "
                "Load the "
                "release's weights with dan_blocks.load_official_checkpoint('danv?_x?_setting?.pth') instead"
            )
        for key in _TIMM_ONLY:
            kwargs.pop(key, None)
        kwargs.setdefault("scale", scale)
        return build(**kwargs)

    create.__name__ = name
    create.__qualname__ = name
    create.__module__ = __name__
    create.__doc__ = f"DAN v{name[5]} x{scale} with the release's setting-1 configuration (timm entrypoint)."
    return create


def register_timm_models() -> list[str]:
    """Register `TIMM_MODEL_NAMES` in timm (skipping names already present); returns the names added."""
    try:
        from timm.models import is_model, register_model
    except ImportError:  # pragma: no cover - timm is a dependency
        return []
    added = []
    for name in TIMM_MODEL_NAMES:
        if is_model(name):
            continue
        build = dan_v1 if name.startswith("dan_v1") else dan_v2
        fn = _entrypoint(name, build, int(name[-1]))
        globals()[name] = fn
        register_model(fn)
        added.append(name)
    return added


register_timm_models()
