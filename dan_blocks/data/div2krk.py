"""Readers of paired blind-SR test folders: make-testset output (manifest.json), KernelGAN's DIV2KRK layout, and
the Gaussian8 folders the DAN release's generator writes.

The DAN release writes ``HR/x<s>/sig<σ>_<name>.png`` and ``LRblur/x<s>/sig<σ>_<name>.png`` (also ``LR/x<s>/``
and ``Bic/x<s>/``), σ being the raw float (``sig2.4000000000000004_img.png``): pairs are matched by file name,
the LR is ``LRblur``, and the ground-truth kernel is the isotropic Gaussian of that σ (k = 21).

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

__all__ = ["MANIFEST_NAME", "RELEASE_KERNEL_SIZE", "list_pairs", "pairs_layout", "read_kernel", "read_manifest",
           "release_sigma"]

_NUMBER = re.compile(r"(\d+)")
_RELEASE_NAME = re.compile(r"^sig(?P<sigma>[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)_(?P<name>.+)$")
#: kernel size of the release's Gaussian8 ground truth
RELEASE_KERNEL_SIZE = 21
#: the file that marks a make-testset folder
MANIFEST_NAME = "manifest.json"


def read_kernel(path: str | os.PathLike[str]) -> np.ndarray:
    """A (k, k) float32 kernel from ``.npy`` or ``.mat`` (key ``Kernel``, else the only 2-D array).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file, when it cannot be read as a kernel: a damaged or pickled (object) ``.npy``,
            a corrupt ``.mat``, a non-numeric, non-square or non-finite array, or another extension.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"kernel file not found: {path}")
    lower = path.lower()
    if lower.endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:  # damaged header / data, or an object (pickled) array
            raise ValueError(
                f"cannot read kernel file {path!r}: not a valid NumPy .npy array of numbers ({err})"
            ) from err
        if not isinstance(arr, np.ndarray):
            raise ValueError(f"cannot read kernel file {path!r}: expected one .npy array")
    elif lower.endswith(".mat"):
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
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"kernel in {path!r} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"kernel in {path!r} must be square (k, k), got shape {arr.shape}")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"kernel in {path!r} has NaN or infinite taps")
    return out


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


def release_sigma(path: str) -> float:
    """σ from a release Gaussian8 file name ``sig<σ>_<name>.<ext>``.

    Raises:
        ValueError: the name does not follow that pattern (names the file).
    """
    stem = os.path.splitext(os.path.basename(path))[0]
    match = _RELEASE_NAME.match(stem)
    if match is None:
        raise ValueError(
            f"release Gaussian8 layout: cannot read sigma from {path!r}; expected a name like "
            "'sig2.4000000000000004_baby.png' (sig<sigma>_<name>)"
        )
    sigma = float(match.group("sigma"))
    if not sigma > 0:
        raise ValueError(f"release Gaussian8 layout: sigma must be > 0 in {path!r}, got {sigma}")
    return sigma


def _release_pairs(root: str, scale: int) -> list[dict[str, Any]]:
    hr_dir, lr_dir = os.path.join(root, "HR", f"x{scale}"), os.path.join(root, "LRblur", f"x{scale}")
    if not os.path.isdir(lr_dir):
        raise FileNotFoundError(f"release Gaussian8 layout {root!r}: no LRblur/x{scale}/ folder next to HR/x{scale}/")
    gts = {os.path.basename(p): p for p in list_images(hr_dir)}
    pairs = []
    for lr in list_images(lr_dir):
        name = os.path.basename(lr)
        if name not in gts:
            raise FileNotFoundError(f"release Gaussian8 layout: LR {lr!r} has no HR image {name!r} in {hr_dir!r}")
        pairs.append({"lr": lr, "gt": gts[name], "kernel": None, "sigma": release_sigma(lr)})
    return pairs


def pairs_layout(root: str | os.PathLike[str], scale: int) -> str:
    """Which layout `list_pairs()` reads in ``root``: ``"release"`` (``HR/x<s>/``), ``"manifest"``
    (make-testset output, whose LR sizes are exactly HR / s) or ``"div2krk"``."""
    root = os.fspath(root)
    if os.path.isdir(os.path.join(root, "HR", f"x{scale}")):
        return "release"
    if os.path.isfile(os.path.join(root, MANIFEST_NAME)):
        return "manifest"
    return "div2krk"


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``manifest.json`` of a make-testset folder, its structure checked.

    Raises:
        ValueError: naming the file, when it is not valid JSON (e.g. truncated) or lacks the ``pairs`` list of
            ``{"lr": ..., "gt": ...}`` entries.
    """
    path = os.fspath(path)
    remake = "remake the test set with dan-blocks make-testset"
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except UnicodeDecodeError as err:
        raise ValueError(f"test-set manifest {path!r} is not valid JSON (not UTF-8 text); {remake}") from err
    except json.JSONDecodeError as err:
        raise ValueError(
            f"test-set manifest {path!r} is not valid JSON ({err.msg} at line {err.lineno} column {err.colno}; "
            f"truncated or damaged?); {remake}"
        ) from err
    pairs = meta.get("pairs") if isinstance(meta, dict) else None
    if not isinstance(pairs, list) or not all(
        isinstance(p, dict) and isinstance(p.get("lr"), str) and isinstance(p.get("gt"), str)
        and isinstance(p.get("kernel"), (str, type(None)))
        for p in pairs
    ):
        raise ValueError(
            f"test-set manifest {path!r} has no valid 'pairs' list of {{lr: ..., gt: ...}} entries; {remake}"
        )
    return meta


def list_pairs(root: str | os.PathLike[str], scale: int) -> list[dict[str, Any]]:
    """``[{"lr": path, "gt": path, "kernel": path | None, ...params}]`` of a folder: a manifest, the DAN
    release's Gaussian8 layout (items carry ``sigma``: the kernel is the isotropic Gaussian of that σ) or
    DIV2KRK (see `pairs_layout()`)."""
    root = os.fspath(root)
    layout = pairs_layout(root, scale)
    if layout == "release":
        return _release_pairs(root, scale)
    if layout == "manifest":
        manifest = os.path.join(root, MANIFEST_NAME)
        meta = read_manifest(manifest)
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
