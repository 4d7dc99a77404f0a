"""Kernel samplers against direct NumPy derivations of the release's formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dan_blocks.degradations import (
    AnisotropicGaussianKernel,
    FixedGaussianKernel,
    IsotropicGaussianKernel,
    anisotropic_gaussian_kernel,
    gaussian8_sigmas,
    isotropic_gaussian_kernel,
    random_disturb,
)


def _iso_loop(sigma: float, k: int) -> np.ndarray:
    # taps written out one by one; offsets -(k-1)/2 .. (k-1)/2, row = y, column = x
    out = np.zeros((k, k))
    r = (k - 1) // 2
    for row in range(k):
        for col in range(k):
            x, y = col - r, row - r
            out[row, col] = math.exp(-(x * x + y * y) / (2 * sigma * sigma))
    return out / out.sum()


def _aniso_matrix(sx: float, sy: float, theta: float, k: int) -> np.ndarray:
    # Sigma = R diag(sx^2, sy^2) R^T, exp(-1/2 p^T Sigma^-1 p) with an explicit matrix inverse
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([sx * sx, sy * sy]) @ rot.T)
    r = (k - 1) // 2
    out = np.zeros((k, k))
    for row in range(k):
        for col in range(k):
            p = np.array([col - r, row - r], dtype=float)
            out[row, col] = math.exp(-0.5 * p @ inv @ p)
    return out / out.sum()


@pytest.mark.parametrize(("sigma", "k"), [(0.2, 21), (1.3, 11), (4.0, 21), (2.6, 31)])
def test_isotropic_matches_direct_loop(sigma: float, k: int) -> None:
    got = isotropic_gaussian_kernel(torch.tensor([sigma], dtype=torch.float64), k, dtype=torch.float64)[
        0
    ].numpy()
    np.testing.assert_allclose(got, _iso_loop(sigma, k), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("sx", "sy", "theta", "k"), [(2.0, 0.7, 0.3, 21), (4.5, 1.2, -2.0, 31), (0.6, 5.0, 3.1, 11)]
)
def test_anisotropic_matches_matrix_inverse(sx: float, sy: float, theta: float, k: int) -> None:
    got = anisotropic_gaussian_kernel(sx, sy, theta, k, dtype=torch.float64)[0].numpy()
    np.testing.assert_allclose(got, _aniso_matrix(sx, sy, theta, k), rtol=0, atol=1e-12)


def test_anisotropic_orientation_x_is_the_column_offset() -> None:
    # theta = 0, sigma_x > sigma_y: the kernel spreads along columns (x). Hand values: exp(-1/8) vs exp(-1/2).
    ker = anisotropic_gaussian_kernel(2.0, 1.0, 0.0, 5, dtype=torch.float64)[0]
    assert ker[2, 3] / ker[2, 2] == pytest.approx(math.exp(-1 / 8))
    assert ker[3, 2] / ker[2, 2] == pytest.approx(math.exp(-1 / 2))
    # rotating by pi/2 swaps the axes
    rot = anisotropic_gaussian_kernel(2.0, 1.0, math.pi / 2, 5, dtype=torch.float64)[0]
    torch.testing.assert_close(rot, ker.T, rtol=0, atol=1e-12)


def test_isotropic_equals_anisotropic_with_equal_sigmas() -> None:
    a = isotropic_gaussian_kernel(1.7, 21, dtype=torch.float64)
    b = anisotropic_gaussian_kernel(1.7, 1.7, 0.9, 21, dtype=torch.float64)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_random_disturb_is_bounded_multiplicative_noise() -> None:
    base = anisotropic_gaussian_kernel(
        torch.tensor([1.0, 3.0]), torch.tensor([2.0, 0.8]), 0.4, 11, dtype=torch.float64
    )
    out = random_disturb(base, torch.Generator().manual_seed(1))
    torch.testing.assert_close(out.sum(dim=(1, 2)), torch.ones(2, dtype=torch.float64))
    ratio = out / base
    spread = ratio.amax(dim=(1, 2)) / ratio.amin(dim=(1, 2))
    assert (spread <= 1.25 + 1e-9).all() and (spread > 1.1).all()  # factors (1 + U(0, 0.25)), renormalised


def test_gaussian8_sigmas_hand_values() -> None:
    np.testing.assert_allclose(
        gaussian8_sigmas(4).numpy(), [1.8, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 3.2], atol=1e-12
    )
    np.testing.assert_allclose(gaussian8_sigmas(2).numpy(), np.arange(8) * (0.8 / 7) + 0.8, atol=1e-12)
    np.testing.assert_allclose(gaussian8_sigmas(3).numpy(), np.arange(8) * 0.15 + 1.35, atol=1e-12)
    with pytest.raises(ValueError, match="Gaussian8"):
        gaussian8_sigmas(5)


@pytest.mark.parametrize(
    "sampler_cls", [IsotropicGaussianKernel, AnisotropicGaussianKernel, FixedGaussianKernel]
)
def test_samplers_seeded_reproducible_and_normalised(sampler_cls: type) -> None:
    sampler = sampler_cls(kernel_size=11)
    a = sampler(6, torch.Generator().manual_seed(7))
    b = sampler(6, torch.Generator().manual_seed(7))
    c = sampler(6, torch.Generator().manual_seed(8))
    assert a.shape == (6, 11, 11) and a.dtype == torch.float32
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    torch.testing.assert_close(a.sum(dim=(1, 2)), torch.ones(6), rtol=0, atol=1e-6)
    d = sampler(6, torch.Generator().manual_seed(7), dtype=torch.float64)
    torch.testing.assert_close(d.float(), a, rtol=0, atol=1e-7)  # same draws whatever the output dtype


def test_sampled_parameters_lie_in_range_and_reproduce_kernels() -> None:
    sampler = AnisotropicGaussianKernel(kernel_size=21, random_disturb=False)
    params = sampler.sample_params(500, torch.Generator().manual_seed(0))
    for key, (lo, hi) in (("sigma_x", (0.6, 5.0)), ("sigma_y", (0.6, 5.0)), ("theta", (-math.pi, math.pi))):
        assert params[key].min() >= lo and params[key].max() <= hi
    i = 3
    expected = _aniso_matrix(*(float(params[k][i]) for k in ("sigma_x", "sigma_y", "theta")), 21)
    np.testing.assert_allclose(sampler.kernels(params, dtype=torch.float64)[i].numpy(), expected, atol=1e-12)
    iso = IsotropicGaussianKernel(21, (0.2, 2.0)).sample_params(500, torch.Generator().manual_seed(0))[
        "sigma"
    ]
    assert iso.min() >= 0.2 and iso.max() <= 2.0
    fixed = FixedGaussianKernel(21, scale=3).sample_params(200, torch.Generator().manual_seed(0))["sigma"]
    assert set(np.round(fixed.numpy(), 6)) <= set(np.round(gaussian8_sigmas(3).numpy(), 6))


@pytest.mark.parametrize("bad", [0, -3, 4, 20, 2.5, True])
def test_bad_kernel_sizes_are_clear_errors(bad: object) -> None:
    with pytest.raises(ValueError, match="kernel_size must be a positive odd integer"):
        IsotropicGaussianKernel(kernel_size=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kernel_size"):
        isotropic_gaussian_kernel(1.0, bad)  # type: ignore[arg-type]


def test_bad_sigmas_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="sigma"):
        IsotropicGaussianKernel(sigma=(2.0, 1.0))
    with pytest.raises(ValueError, match="sigma"):
        isotropic_gaussian_kernel(torch.tensor([0.0]))
