"""Fit the PCA kernel encoders the way the release's ``creat_PCA.py`` does (30,000 kernels, SVD).

The kernels are drawn from the training distribution of a setting (1: isotropic σ ~ U(0.2, 4.0);
2: anisotropic σx, σy ~ U(0.6, 5), θ ~ U(-π, π), random_disturb) with a seeded ``torch.Generator`` in chunks
of `CHUNK` kernels, so a given (setting, kernel_size, samples, seed) always gives the same matrix on one
platform (float64 SVD; BLAS libraries may differ in the last bits across platforms).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..layers.pca import PCAEncoder
from ..settings import SETTING2, SETTINGS
from .kernels import AnisotropicGaussianKernel, IsotropicGaussianKernel

__all__ = ["CHUNK", "SETTING_SIGMAS", "fit_default_pca", "sample_training_kernels"]

#: kernels drawn per generator call (part of the reproducibility contract: changing it changes the draws)
CHUNK = 5000
#: default sigma range per setting (setting 1: the release's single range for every scale), from the settings table
SETTING_SIGMAS: dict[int, tuple[float, float]] = {number: s.sigma for number, s in SETTINGS.items()}


def sample_training_kernels(
    setting: int, kernel_size: int, samples: int, seed: int = 0, sigma: Sequence[float] | None = None
) -> Tensor:
    """(samples, k, k) float64 kernels of a setting's training distribution, from ``manual_seed(seed)``."""
    if setting not in SETTING_SIGMAS:
        raise ValueError(
            f"setting must be 1 (isotropic) or 2 (anisotropic + random_disturb), got {setting!r}"
        )
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    sig = tuple(sigma) if sigma is not None else SETTING_SIGMAS[setting]
    theta = SETTING2.theta
    assert theta is not None  # setting 2 has a rotation range
    sampler = (
        IsotropicGaussianKernel(kernel_size, sig)
        if setting == 1
        else AnisotropicGaussianKernel(kernel_size, sig, theta, random_disturb=SETTING2.random_disturb)
    )
    generator = torch.Generator().manual_seed(int(seed))
    chunks = []
    for start in range(0, samples, CHUNK):
        n = min(CHUNK, samples - start)
        chunks.append(sampler(n, generator, dtype=torch.float64))
    return torch.cat(chunks)


def fit_default_pca(
    kernel_size: int = 21,
    code_length: int = 10,
    setting: int = 1,
    samples: int = 30000,
    seed: int = 0,
    sigma: Sequence[float] | None = None,
) -> PCAEncoder:
    """Fit a release-style PCA encoder (``center=False``: codes are ``vec(k) @ P``) with metadata.

    Args:
        kernel_size: k (odd).
        code_length: C.
        setting: 1 or 2 (see module docstring).
        samples: number of kernels (the release: 30,000).
        seed: ``torch.Generator`` seed.
        sigma: override of the setting's sigma range.

    Returns:
        `PCAEncoder` with ``matrix`` (k*k, C) and metadata describing the fit.
    """
    kernels = sample_training_kernels(setting, kernel_size, samples, seed, sigma)
    sig = list(sigma) if sigma is not None else list(SETTING_SIGMAS[setting])
    meta: dict[str, Any] = {
        "setting": int(setting),
        "kernel": "isotropic" if setting == 1 else "anisotropic+random_disturb",
        "sigma_range": sig,
        "theta_range": None if setting == 1 else list(SETTING2.theta),  # type: ignore[arg-type]
        "samples": int(samples),
        "seed": int(seed),
        "chunk": CHUNK,
        "kernel_size": int(kernel_size),
        "code_length": int(code_length),
        "center": False,
        "encoding": "vec(k) @ P, no mean subtraction (DAN release)",
        "torch": str(torch.__version__),
    }
    return PCAEncoder.fit(kernels, code_length, center=False, metadata=meta)
