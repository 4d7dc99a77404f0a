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

#: arguments timm.create_model always passes (handled here: nothing downloads, the cfg is ours)
_TIMM_PASSED = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")
#: timm arguments that describe a classifier or a feature backbone: an SR network cannot honour them
_REFUSED = {
    "features_only": "a super-resolution network has no feature pyramid (use model.restorer / model.estimator)",
    "out_indices": "a super-resolution network has no feature pyramid",
    "feature_cls": "a super-resolution network has no feature pyramid",
    "num_classes": "a super-resolution network has no classifier head (it outputs an image)",
    "global_pool": "a super-resolution network has no classifier pooling",
    "drop_rate": "the DAN release trains without dropout",
    "drop_path_rate": "the DAN release trains without stochastic depth",
    "drop_block_rate": "the DAN release trains without DropBlock",
}


def _cfg(name: str, scale: int) -> dict[str, Any]:
    """A timm ``pretrained_cfg`` describing an SR model: any input size (64 px, the release's LR training patch,
    as the nominal one), images in [0, 1] without normalisation, no crop, bicubic resizing, the scale factor."""
    return {
        "architecture": name,
        "tag": "",
        "hf_hub_id": None,
        "url": "",
        "num_classes": 0,
        "input_size": (3, 64, 64),
        "fixed_input_size": False,
        "min_input_size": (3, 1, 1),
        "interpolation": "bicubic",
        "crop_pct": 1.0,
        "crop_mode": "center",
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "first_conv": "restorer.head" if name.startswith("dan_v1") else "restorer.head1",
        "classifier": None,
        "scale": scale,
        "task": "super-resolution",
        "license": "see docs/results.md (the release has no licence file)",
    }


def _check_timm_arguments(name: str, kwargs: dict[str, Any]) -> None:
    for key, why in _REFUSED.items():
        if key in kwargs and kwargs[key] not in (None, False, 0, 0.0):
            raise ValueError(f"timm model {name}: {key}={kwargs[key]!r} is not supported: {why}")
        kwargs.pop(key, None)
    chans = kwargs.pop("in_chans", 3)
    if chans != 3:
        raise ValueError(
            f"timm model {name}: in_chans={chans!r} is not supported: DAN restores RGB images (3 channels) and its "
            "kernel estimator reads the RGB image too; convert grey images to RGB first"
        )
    for key in ("scriptable", "exportable", "no_jit", "checkpoint_path"):
        kwargs.pop(key, None)


def _entrypoint(name: str, build: Callable[..., nn.Module], scale: int) -> Callable[..., nn.Module]:
    def create(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        if pretrained:
            raise ValueError(
                f"timm model {name}: pretrained=True is not supported (dan-blocks downloads nothing). "
                "Load the "
                "release's weights with dan_blocks.load_official_checkpoint('danv?_x?_setting?.pth') instead"
            )
        for key in _TIMM_PASSED:
            kwargs.pop(key, None)
        _check_timm_arguments(name, kwargs)
        kwargs.setdefault("scale", scale)
        model = build(**kwargs)
        cfg = _cfg(name, int(kwargs["scale"]))
        object.__setattr__(model, "pretrained_cfg", cfg)  # what timm.data.resolve_data_config(model=...) reads
        object.__setattr__(model, "default_cfg", cfg)
        return model

    create.__name__ = name
    create.__qualname__ = name
    create.__module__ = __name__
    create.__doc__ = f"DAN v{name[5]} x{scale} with the release's setting-1 configuration (timm entrypoint)."
    return create


def _default_cfgs() -> Any:
    try:
        import dataclasses

        from timm.models import generate_default_cfgs
        from timm.models._pretrained import PretrainedCfg
    except ImportError:  # pragma: no cover - timm is a dependency
        return {}
    fields = {f.name for f in dataclasses.fields(PretrainedCfg)}  # timm's dataclass holds no scale: models do
    return generate_default_cfgs(
        {name: {k: v for k, v in _cfg(name, int(name[-1])).items() if k in fields} for name in TIMM_MODEL_NAMES}
    )


#: timm reads the pretrained cfgs of this module's entrypoints from here (``timm.models.get_pretrained_cfg``)
default_cfgs = _default_cfgs()


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
