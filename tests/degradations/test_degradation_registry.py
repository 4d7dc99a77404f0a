"""DEGRADATION_REGISTRY, build_degradation and the setting-1 / setting-2 presets."""

from __future__ import annotations

import math

import pytest
import torch

from dan_blocks.degradations import (
    DEGRADATION_REGISTRY,
    BlindSRDegradation,
    blur,
    build_degradation,
    imresize,
    isotropic_gaussian_kernel,
    register_degradation,
)

OPTION_BLOCK = {
    "type": "BlindSRDegradation",
    "scale": 4,
    "kernel": {"type": "IsotropicGaussianKernel", "kernel_size": 21, "sigma": [0.2, 4.0]},
    "downsample": "bicubic",
    "noise": None,
    "quantize": True,
}


def test_every_sampler_and_op_is_registered_and_registration_is_idempotent() -> None:
    for name in (
        "BlindSRDegradation",
        "IsotropicGaussianKernel",
        "AnisotropicGaussianKernel",
        "FixedGaussianKernel",
        "blur",
        "imresize",
        "stride_downsample",
        "add_gaussian_noise",
        "quantize",
        "random_disturb",
    ):
        assert name in DEGRADATION_REGISTRY
    assert (
        register_degradation(BlindSRDegradation) is BlindSRDegradation
    )  # no AssertionError on a second call
    assert DEGRADATION_REGISTRY.get("blur") is blur


def test_option_block_equals_manual_composition() -> None:
    deg = build_degradation(OPTION_BLOCK)
    assert (deg.scale, deg.kernel_size) == (4, 21)
    hr = torch.rand(3, 3, 37, 42, generator=torch.Generator().manual_seed(0))
    result = deg.sample(hr, torch.Generator().manual_seed(3))
    lr, kernels = result["lr"], result["kernels"]
    assert lr.shape == (3, 3, 10, 11) and kernels.shape == (3, 21, 21)
    sigma = result["params"]["sigma"]
    expected_kernels = isotropic_gaussian_kernel(sigma, 21)
    torch.testing.assert_close(kernels, expected_kernels, rtol=0, atol=1e-7)
    manual = torch.round(imresize(blur(hr, expected_kernels), 0.25).clamp(0, 1) * 255) / 255
    torch.testing.assert_close(lr, manual, rtol=0, atol=1e-6)
    lr2, k2 = deg(hr, torch.Generator().manual_seed(3))
    assert torch.equal(lr2, lr) and torch.equal(k2, kernels)


def test_output_follows_hr_dtype() -> None:
    deg = build_degradation({"preset": "setting2", "scale": 2})
    lr, kernels = deg(torch.rand(2, 3, 20, 20, dtype=torch.float64), torch.Generator().manual_seed(0))
    assert lr.dtype == kernels.dtype == torch.float64
    assert lr.shape == (2, 3, 10, 10) and kernels.shape == (2, 11, 11)


@pytest.mark.parametrize(("scale", "paper_high"), [(2, 2.0), (3, 3.0), (4, 4.0)])
def test_setting1_preset_sigma_ranges(scale: int, paper_high: float) -> None:
    deg = build_degradation({"preset": "setting1", "scale": scale})
    assert deg.kernel_sampler.sigma == (0.2, paper_high) and deg.kernel_size == 21 and deg.quantize
    release = build_degradation({"preset": "setting1", "scale": scale, "sigma_range": "release"})
    assert release.kernel_sampler.sigma == (0.2, 4.0)
    custom = build_degradation({"preset": "setting1", "scale": scale, "sigma": [1.0, 1.5]})
    assert custom.kernel_sampler.sigma == (1.0, 1.5)


def test_setting2_preset_kernel_sizes_and_distribution() -> None:
    assert build_degradation({"preset": "setting2", "scale": 2}).kernel_size == 11
    x4 = build_degradation({"preset": "setting2", "scale": 4})
    assert x4.kernel_size == 21 and x4.setting == 2
    sampler = x4.kernel_sampler
    assert sampler.sigma == (0.6, 5.0) and sampler.theta == (-math.pi, math.pi) and sampler.random_disturb
    assert build_degradation({"preset": "setting2", "scale": 4, "kernel_size": 31}).kernel_size == 31
    with pytest.raises(ValueError, match="kernel_size"):
        build_degradation({"preset": "setting2", "scale": 3})


def test_noise_block_draws_per_sample_levels() -> None:
    deg = build_degradation(
        {**OPTION_BLOCK, "quantize": False, "noise": {"level": [0.0, 0.1], "rate_clean": 0.0}}
    )
    result = deg.sample(torch.full((4, 3, 32, 32), 0.5), torch.Generator().manual_seed(0))
    assert result["noise_level"].shape == (4,)
    assert (result["noise_level"] >= 0).all() and (result["noise_level"] <= 0.1).all()


@pytest.mark.parametrize(
    ("opt", "error", "names"),
    [
        ({"preset": "setting3"}, ValueError, ["setting3", "setting1", "setting2"]),
        ({"preset": "setting1", "sigmaa": 1}, KeyError, ["sigmaa", "sigma_range"]),
        ({"type": "BlindSRDegradaton"}, ValueError, ["BlindSRDegradaton", "BlindSRDegradation"]),
        ({**OPTION_BLOCK, "quantise": True}, KeyError, ["quantise", "quantize"]),
        (
            {**OPTION_BLOCK, "kernel": {"type": "IsoGaussian"}},
            ValueError,
            ["IsoGaussian", "IsotropicGaussianKernel"],
        ),
        (
            {**OPTION_BLOCK, "kernel": {"type": "IsotropicGaussianKernel", "sigmas": 1}},
            KeyError,
            ["sigmas", "sigma"],
        ),
        ({**OPTION_BLOCK, "downsample": "bilinear"}, ValueError, ["bilinear", "bicubic", "stride"]),
        ({**OPTION_BLOCK, "noise": {"sigma": 0.1}}, KeyError, ["sigma", "level"]),
    ],
)
def test_misspelled_keys_and_types_are_named_with_the_accepted_ones(
    opt: dict, error: type, names: list
) -> None:
    with pytest.raises(error) as info:
        build_degradation(opt)
    for name in names:
        assert name in str(info.value)


def test_hr_must_be_a_float_batch() -> None:
    deg = build_degradation(OPTION_BLOCK)
    with pytest.raises(ValueError, match="hr must be"):
        deg(torch.rand(3, 40, 40))
