"""Built-in offline data: a fixed split of the photographs shipped inside scikit-image's wheel.

Use ``builtin:skimage-train`` / ``builtin:skimage-test`` wherever a data root (``dataroot_gt``, ``HR_DIR``) is
expected. Images are uint8 (H, W, 3) RGB arrays named after their ``skimage.data`` function (grey photographs
are replicated to three channels; ``motorcycle_left``/``motorcycle_right`` are the two views of
``stereo_motorcycle()``). The test photographs (astronaut, chelsea, coffee) never appear in the training set
(``cat`` is chelsea under another name and is left out).
"""

from __future__ import annotations

import numpy as np

__all__ = ["BUILTIN_PREFIX", "BUILTIN_SETS", "builtin_name", "is_builtin", "load_builtin"]

BUILTIN_PREFIX = "builtin:"
#: set name -> skimage.data images (photographs shipped in the wheel, no download; grey ones replicated to RGB)
BUILTIN_SETS: dict[str, tuple[str, ...]] = {
    "skimage-train": (
        "motorcycle_left", "motorcycle_right", "rocket", "camera", "moon", "coins", "brick", "grass", "gravel",
        "clock",
    ),
    "skimage-test": ("astronaut", "chelsea", "coffee"),
}

#: names of the two views of ``skimage.data.stereo_motorcycle()`` (left, right, disparity)
_STEREO_VIEWS = {"motorcycle_left": 0, "motorcycle_right": 1}


def is_builtin(root: object) -> bool:
    """True for strings of the form ``builtin:<set>``."""
    return isinstance(root, str) and root.startswith(BUILTIN_PREFIX)


def builtin_name(root: str) -> str:
    """``"builtin:skimage-test"`` -> ``"skimage-test"``, validating the set name."""
    name = root[len(BUILTIN_PREFIX) :] if is_builtin(root) else root
    if name not in BUILTIN_SETS:
        raise ValueError(
            f"unknown built-in data set {root!r}; accepted: {[BUILTIN_PREFIX + n for n in BUILTIN_SETS]}"
        )
    return name


def load_builtin(root: str) -> list[tuple[str, np.ndarray]]:
    """``[(name, uint8 (H, W, 3) RGB array), ...]`` of a built-in set, in a fixed order."""
    import skimage.data

    images = []
    for fn in BUILTIN_SETS[builtin_name(root)]:
        if fn in _STEREO_VIEWS:
            img = np.asarray(skimage.data.stereo_motorcycle()[_STEREO_VIEWS[fn]])
        else:
            img = np.asarray(getattr(skimage.data, fn)())
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        images.append((fn, np.ascontiguousarray(img[:, :, :3].astype(np.uint8))))
    return images
