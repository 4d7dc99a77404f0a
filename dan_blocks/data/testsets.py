"""Blind-SR test sets from HR images: Gaussian8 (setting 1) and DIV2KRK-style anisotropic (setting 2).

Output layout (``out_dir``), the DIV2KRK layout with NumPy kernels plus a manifest:

    gt/<name>.png                 mod-cropped HR (uint8)
    lr_x<s>/<name>[_sig<σ>].png   blur (reflect padding) + MATLAB bicubic 1/s, rounded to uint8
    gt_k_x<s>/<same stem>.npy     the (k, k) float32 kernel
    manifest.json                 protocol, scale, seed, source; per LR file: gt, kernel, kernel parameters
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from ..degradations.blur import blur
from ..degradations.checks import check_range
from ..degradations.imresize import imresize
from ..degradations.kernels import AnisotropicGaussianKernel, gaussian8_sigmas, isotropic_gaussian_kernel
from ..settings import DIV2KRK_KERNEL_SIZES, GAUSSIAN8_SIGMA_RANGES, SETTING2
from ..utils import atomic_path
from .builtin import is_builtin, load_builtin
from .image_io import list_images, read_image, to_tensor, to_uint8, write_image

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "PROTOCOLS",
    "center_crop",
    "check_testset_options",
    "degrade_image",
    "iter_testset",
    "make_testset",
    "modcrop",
    "sources",
]

PROTOCOLS = ("gaussian8", "aniso")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "dan_blocks.testset/1"
_ANISO_KERNEL_SIZES = DIV2KRK_KERNEL_SIZES


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop an (H, W, ...) array to H and W multiples of ``scale`` (bottom/right rows dropped)."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def center_crop(img: np.ndarray, max_size: int | None) -> np.ndarray:
    """Centre-crop an (H, W, ...) array so that neither side exceeds ``max_size`` (None: unchanged; else >= 1)."""
    if max_size is None:
        return img
    _check_int(max_size, "max_size", 1)
    h, w = img.shape[:2]
    top, left = max(0, (h - max_size) // 2), max(0, (w - max_size) // 2)
    return img[top : top + max_size, left : left + max_size]


def degrade_image(hr: torch.Tensor, kernels: torch.Tensor, scale: int) -> torch.Tensor:
    """(3, H, W) HR and (N, k, k) kernels -> (N, 3, H/s, W/s) LR: blur then bicubic 1/s (no rounding)."""
    batch = hr[None].expand(kernels.shape[0], -1, -1, -1)
    return imresize(blur(batch, kernels), 1.0 / scale)


def sources(hr_dir: str) -> list[tuple[str, Any]]:
    if is_builtin(hr_dir):
        return list(load_builtin(hr_dir))
    paths = list_images(hr_dir)
    if not paths:
        raise FileNotFoundError(f"no images found in HR folder {hr_dir!r}")
    return [(os.path.splitext(os.path.basename(p))[0], p) for p in paths]


def _write_json(path: str, obj: dict[str, Any]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


def _save_npy(path: str, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, arr)


def _kernel_size(protocol: str, scale: int, kernel_size: int | None) -> int:
    if kernel_size is not None:
        return kernel_size
    return 21 if protocol == "gaussian8" else _ANISO_KERNEL_SIZES.get(scale, 21)


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"make_testset: {name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"make_testset: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


#: argument -> how errors name it (the CLI passes its option names)
_NAMES = {"protocol": "protocol", "scale": "scale", "kernel_size": "kernel_size", "sigma": "sigma",
          "max_size": "max_size"}


def check_testset_options(
    protocol: str = "gaussian8",
    scale: int = 4,
    kernel_size: int | None = None,
    sigma: Any = SETTING2.sigma,
    max_size: int | None = None,
    names: dict[str, str] | None = None,
) -> None:
    """Check the arguments of `make_testset()` / `iter_testset()` before anything is read or written.

    Args:
        protocol, scale, kernel_size, sigma, max_size: as `make_testset()`.
        names: how the errors name each argument (``{"scale": "--scale", ...}``; default: the argument names).

    Raises:
        TypeError: an argument of the wrong type (naming it).
        ValueError: an unknown protocol; a scale that is not an integer >= 1 (2, 3 or 4 for gaussian8); a
            kernel size that is not a positive odd integer; a sigma range that is not ``0 < low <= high``
            (finite); a ``max_size`` < 1.
    """
    n = {**_NAMES, **(names or {})}
    if protocol not in PROTOCOLS:
        raise ValueError(f"make_testset: unknown {n['protocol']} {protocol!r}; accepted: {list(PROTOCOLS)}")
    _check_int(scale, n["scale"], 1)
    if protocol == "gaussian8" and scale not in GAUSSIAN8_SIGMA_RANGES:
        raise ValueError(
            f"make_testset: Gaussian8 is defined for scales {sorted(GAUSSIAN8_SIGMA_RANGES)}, got "
            f"{n['scale']} {scale!r} (the aniso protocol takes any integer scale >= 1)"
        )
    if kernel_size is not None:
        odd = f"make_testset: {n['kernel_size']} must be a positive odd integer (e.g. 11, 21, 31), got {kernel_size!r}"
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)):
            raise TypeError(odd)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(odd)
    check_range(sigma, f"make_testset: {n['sigma']} (aniso sigma range)", minimum=0.0, strict=True)
    if max_size is not None:
        _check_int(max_size, n["max_size"], 1)


def iter_testset(
    sources: Iterable[tuple[str, Any]],
    protocol: str = "gaussian8",
    scale: int = 4,
    seed: int = 0,
    kernel_size: int | None = None,
    sigma: tuple[float, float] = SETTING2.sigma,
    random_disturb: bool = True,
    max_size: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield, per source ``(name, uint8 RGB array or image path)``, ``{"name", "gt", "source", "items"}``:
    ``gt`` is the mod-cropped uint8 HR, ``items`` a list of
    ``(stem, lr uint8, kernel (k, k) float32, params)``.
    """
    check_testset_options(protocol, scale, kernel_size, sigma, max_size)
    k = _kernel_size(protocol, scale, kernel_size)
    sampler = None
    if protocol == "gaussian8":
        sigmas = gaussian8_sigmas(scale)
        table = isotropic_gaussian_kernel(sigmas, k)
    else:
        theta = SETTING2.theta or (-math.pi, math.pi)
        sampler = AnisotropicGaussianKernel(k, sigma, theta, random_disturb=random_disturb)
    generator = torch.Generator().manual_seed(int(seed))
    for name, src in sources:
        img = modcrop(center_crop(src if isinstance(src, np.ndarray) else read_image(src), max_size), scale)
        if min(img.shape[:2]) <= k // 2:
            raise ValueError(
                f"make_testset: image {name!r} ({img.shape[0]}x{img.shape[1]} after mod-crop) is "
                f"smaller than the kernel (k={k})"
            )
        if sampler is None:
            kernels, stems = table, [f"{name}_sig{s:.2f}" for s in sigmas.tolist()]
            params = [{"sigma": round(float(s), 6)} for s in sigmas.tolist()]
        else:
            p = sampler.sample_params(1, generator)
            kernels, stems = sampler.kernels(p, generator=generator), [name]
            params = [{key: float(v[0]) for key, v in p.items()} | {"random_disturb": random_disturb}]
        lr = degrade_image(to_tensor(img), kernels.float(), scale)
        items = [
            (stem, to_uint8(lr[i]), kernels[i].float().numpy(), params[i]) for i, stem in enumerate(stems)
        ]
        yield {"name": name, "gt": img, "source": src if isinstance(src, str) else None, "items": items}


def make_testset(
    hr_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    protocol: str = "gaussian8",
    scale: int = 4,
    seed: int = 0,
    kernel_size: int | None = None,
    sigma: tuple[float, float] = SETTING2.sigma,
    random_disturb: bool = True,
    progress: bool = True,
    max_size: int | None = None,
) -> dict[str, Any]:
    """Make a blind-SR test set; returns the manifest (also written to ``out_dir/manifest.json``).

    Args:
        hr_dir: folder of HR images, or ``builtin:skimage-test`` / ``builtin:skimage-train``.
        out_dir: output folder (created).
        protocol: ``"gaussian8"`` (isotropic, k=21, the 8 sigmas of ``scale``; 8 LR images per HR image) or
            ``"aniso"`` (one anisotropic kernel per image, σx, σy ~ U(sigma), θ ~ U(-π, π), random_disturb;
            k = 11/21/31 for x2/x3/x4; drawn from ``torch.Generator().manual_seed(seed)`` in image order).
        scale: 2, 3 or 4 for gaussian8; any integer >= 1 for aniso.
        kernel_size: override the protocol's k (a positive odd integer).
        sigma: the aniso sigma range ``(low, high)``, ``0 < low <= high``.
        progress: show a tqdm progress bar.
        max_size: centre-crop each HR image to at most ``max_size`` (>= 1) per side first (small, fast sets).

    Raises:
        TypeError, ValueError: a bad argument (see `check_testset_options()`), checked before ``out_dir`` is
            made.
        FileNotFoundError, NotADirectoryError: ``hr_dir`` is missing, a file, or holds no image.
    """
    from tqdm import tqdm

    check_testset_options(protocol, scale, kernel_size, sigma, max_size)
    hr_dir, out_dir = os.fspath(hr_dir), os.fspath(out_dir)
    srcs = sources(hr_dir)
    dirs = {"gt": "gt", "lr": f"lr_x{scale}", "kernel": f"gt_k_x{scale}"}
    pairs: list[dict[str, Any]] = []
    records = iter_testset(srcs, protocol, scale, seed, kernel_size, sigma, random_disturb, max_size)
    for rec in tqdm(
        records, total=len(srcs), desc=f"make-testset {protocol} x{scale}", disable=not progress, unit="img"
    ):
        if not pairs:  # made once the first image went through: an image smaller than the kernel leaves nothing
            for d in dirs.values():
                os.makedirs(os.path.join(out_dir, d), exist_ok=True)
        gt_rel = f"{dirs['gt']}/{rec['name']}.png"
        write_image(os.path.join(out_dir, gt_rel), rec["gt"])
        source = rec["source"] or f"{hr_dir}/{rec['name']}"
        for stem, lr, kernel, params in rec["items"]:
            lr_rel, k_rel = f"{dirs['lr']}/{stem}.png", f"{dirs['kernel']}/{stem}.npy"
            write_image(os.path.join(out_dir, lr_rel), lr)
            _save_npy(os.path.join(out_dir, k_rel), kernel)
            pairs.append({"lr": lr_rel, "gt": gt_rel, "kernel": k_rel, "source": source, **params})
    manifest = {
        "format": MANIFEST_FORMAT,
        "protocol": protocol,
        "scale": scale,
        "seed": int(seed),
        "kernel_size": _kernel_size(protocol, scale, kernel_size),
        "source": hr_dir,
        "sigma_range": list(sigma) if protocol == "aniso" else None,
        "random_disturb": random_disturb if protocol == "aniso" else None,
        "max_size": max_size,
        "pipeline": "reflect-padded blur, MATLAB bicubic 1/s with antialiasing, uint8 rounding",
        "pairs": pairs,
    }
    _write_json(os.path.join(out_dir, MANIFEST), manifest)
    return manifest
