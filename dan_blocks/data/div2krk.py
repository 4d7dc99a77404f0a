"""Readers of paired blind-SR test folders: make-testset output (manifest.json), KernelGAN's DIV2KRK layout.

DIV2KRK as distributed: ``gt/img_<n>_gt.png``, ``lr_x2/im_<n>.png``, ``lr_x4/im_<n>.png``,
``gt_k_x2/kernel_<n>.mat``, ``gt_k_x4/kernel_<n>.mat`` (MATLAB files holding one 2-D array, key ``Kernel``).
Files are paired by the number in their names; kernels may also be ``.npy``.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np

from .image_io import list_images

__all__ = ["list_pairs", "read_kernel"]

_NUMBER = re.compile(r"(\d+)")


def read_kernel(path: str | os.PathLike[str]) -> np.ndarray:
    """A (k, k) float32 kernel from ``.npy`` or ``.mat`` (key ``Kernel``, else the only 2-D array)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"kernel file not found: {path}")
    if path.endswith(".npy"):
        arr = np.load(path, allow_pickle=False)
    elif path.endswith(".mat"):
        from scipy.io import loadmat

        try:
            mat = loadmat(path)
        except Exception as err:  # scipy raises several types for corrupt files
            raise OSError(f"cannot read MATLAB kernel file {path!r}: {err}") from err
        arrays = {k: v for k, v in mat.items() if not k.startswith("__") and isinstance(v, np.ndarray)}
        if "Kernel" in arrays:
            arr = arrays["Kernel"]
        elif len([v for v in arrays.values() if v.ndim == 2]) == 1:
            arr = next(v for v in arrays.values() if v.ndim == 2)
        else:
            raise ValueError(f"{path!r}: expected a 'Kernel' array, found keys {sorted(arrays)}")
    else:
        raise ValueError(f"unsupported kernel file {path!r} (expected .npy or .mat)")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"kernel in {path!r} must be square (k, k), got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _by_number(paths: list[str], what: str) -> dict[int, str]:
    table: dict[int, str] = {}
    for p in paths:
        numbers = _NUMBER.findall(os.path.basename(p))
        if not numbers:
            raise ValueError(f"DIV2KRK layout: cannot pair {what} file {p!r} (no number in its name)")
        table[int(numbers[-1])] = p
    return table


def _div2krk_pairs(root: str, scale: int) -> list[dict[str, Any]]:
    lr_dir, gt_dir, k_dir = (os.path.join(root, d) for d in (f"lr_x{scale}", "gt", f"gt_k_x{scale}"))
    for d in (lr_dir, gt_dir):
        if not os.path.isdir(d):
            raise FileNotFoundError(
                f"paired data root {root!r}: no manifest.json and no DIV2KRK folder {os.path.basename(d)}/ "
                f"(expected gt/, lr_x{scale}/, optional gt_k_x{scale}/)"
            )
    lrs = _by_number(list_images(lr_dir), "LR")
    gts = _by_number(list_images(gt_dir), "GT")
    kernels: dict[int, str] = {}
    if os.path.isdir(k_dir):
        files = sorted(os.path.join(k_dir, n) for n in os.listdir(k_dir) if n.endswith((".mat", ".npy")))
        kernels = _by_number(files, "kernel")
    pairs = []
    for n in sorted(lrs):
        if n not in gts:
            raise FileNotFoundError(
                f"DIV2KRK layout: LR {lrs[n]!r} has no GT image numbered {n} in {gt_dir!r}"
            )
        pairs.append({"lr": lrs[n], "gt": gts[n], "kernel": kernels.get(n)})
    return pairs


def list_pairs(root: str | os.PathLike[str], scale: int) -> list[dict[str, Any]]:
    """``[{"lr": path, "gt": path, "kernel": path | None, ...params}]`` of a folder (manifest or DIV2KRK)."""
    root = os.fspath(root)
    manifest = os.path.join(root, "manifest.json")
    if os.path.isfile(manifest):
        with open(manifest, encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("scale") != scale:
            raise ValueError(
                f"{manifest!r} was made for scale {meta.get('scale')}, the options ask for {scale}"
            )
        out = []
        for pair in meta["pairs"]:
            item = dict(pair)
            for key in ("lr", "gt", "kernel"):
                if item.get(key):
                    item[key] = os.path.join(root, item[key])
            out.append(item)
        return out
    return _div2krk_pairs(root, scale)
