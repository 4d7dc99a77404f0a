"""Degradations of blind SR as tensor ops: kernel samplers, batched blur / MATLAB bicubic / noise, PCA fitting,
presets. No file I/O here (test-set files: `dan_blocks.data`); the numbers come from
`dan_blocks.settings`.

``from dan_blocks.degradations import build_degradation, DEGRADATION_REGISTRY, imresize, blur``
"""

from __future__ import annotations

from ..settings import GAUSSIAN8_SIGMA_RANGES, SETTING1_SIGMA_RANGES
from .blur import Blur, blur
from .imresize import Imresize, imresize, imresize_matrix, stride_downsample
from .kernels import (
    AnisotropicGaussianKernel,
    FixedGaussianKernel,
    IsotropicGaussianKernel,
    KernelSampler,
    anisotropic_gaussian_kernel,
    gaussian8_sigmas,
    isotropic_gaussian_kernel,
    random_disturb,
)
from .noise import add_gaussian_noise, quantize, sample_noise_levels
from .pca_fit import fit_default_pca, sample_training_kernels
from .pipeline import BlindSRDegradation, build_kernel_sampler
from .registry import DEGRADATION_REGISTRY, PRESETS, build_degradation, preset_options, register_degradation
from .spatial import (
    SpatiallyVariantDegradation,
    corner_field,
    gaussian_field_blur,
    gaussian_kernel_field,
    spatially_variant_blur,
)

__all__ = [
    "DEGRADATION_REGISTRY",
    "GAUSSIAN8_SIGMA_RANGES",
    "PRESETS",
    "SETTING1_SIGMA_RANGES",
    "AnisotropicGaussianKernel",
    "BlindSRDegradation",
    "Blur",
    "FixedGaussianKernel",
    "Imresize",
    "IsotropicGaussianKernel",
    "KernelSampler",
    "SpatiallyVariantDegradation",
    "add_gaussian_noise",
    "anisotropic_gaussian_kernel",
    "blur",
    "build_degradation",
    "build_kernel_sampler",
    "corner_field",
    "fit_default_pca",
    "gaussian8_sigmas",
    "gaussian_field_blur",
    "gaussian_kernel_field",
    "imresize",
    "imresize_matrix",
    "isotropic_gaussian_kernel",
    "preset_options",
    "quantize",
    "random_disturb",
    "register_degradation",
    "sample_noise_levels",
    "sample_training_kernels",
    "spatially_variant_blur",
    "stride_downsample",
]
