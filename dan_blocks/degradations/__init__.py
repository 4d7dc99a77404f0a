"""Degradations of blind SR: kernel samplers, batched blur / MATLAB bicubic / noise ops, PCA fitting."""

from __future__ import annotations

from .kernels import (
    GAUSSIAN8_SIGMA_RANGES,
    SETTING1_SIGMA_RANGES,
    AnisotropicGaussianKernel,
    FixedGaussianKernel,
    IsotropicGaussianKernel,
    anisotropic_gaussian_kernel,
    gaussian8_sigmas,
    isotropic_gaussian_kernel,
    random_disturb,
)
from .pca_fit import fit_default_pca, sample_training_kernels

__all__ = [
    "GAUSSIAN8_SIGMA_RANGES",
    "SETTING1_SIGMA_RANGES",
    "AnisotropicGaussianKernel",
    "FixedGaussianKernel",
    "IsotropicGaussianKernel",
    "anisotropic_gaussian_kernel",
    "fit_default_pca",
    "gaussian8_sigmas",
    "isotropic_gaussian_kernel",
    "random_disturb",
    "sample_training_kernels",
]
