"""Spatially variant degradation against direct derivations: corner interpolation, per-pixel blur, GT kernel map."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dan_blocks.basicsr  # noqa: F401  (makes basicsr importable, registers dan-blocks)
from dan_blocks.degradations import (
    DEGRADATION_REGISTRY,
    SpatiallyVariantDegradation,
    anisotropic_gaussian_kernel,
    blur,
    build_degradation,
    corner_field,
    gaussian_field_blur,
    gaussian_kernel_field,
    imresize,
    isotropic_gaussian_kernel,
    spatially_variant_blur,
)


def _direct_blur(img: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """Per-pixel loop: out[c, i, j] = sum_{r, s} reflect_pad(img)[c, i + r, j + s] * kernel_ij[r, s]."""
    c, h, w = img.shape
    k = math.isqrt(kernels.shape[0])
    p = k // 2
    padded = np.pad(img, ((0, 0), (p, p), (p, p)), mode="reflect")
    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            kij = kernels[:, i, j].reshape(k, k)
            for ch in range(c):
                out[ch, i, j] = (padded[ch, i : i + k, j : j + k] * kij).sum()
    return out


def test_corner_field_hand_values() -> None:
    corners = torch.tensor([[[1.0, 3.0], [5.0, 11.0]]])
    rows, cols = torch.tensor([0.0, 2.0, 4.0]), torch.tensor([0.0, 1.5, 3.0])
    f = corner_field(corners, rows, cols, height=5, width=4)
    assert f.shape == (1, 3, 3)
    assert f[0, 0, 0] == 1 and f[0, 0, 2] == 3 and f[0, 2, 0] == 5 and f[0, 2, 2] == 11
    assert f[0, 1, 1] == pytest.approx((1 + 3 + 5 + 11) / 4)  # the centre is the mean of the corners
    assert f[0, 0, 1] == pytest.approx(2.0) and f[0, 2, 1] == pytest.approx(8.0)  # edge midpoints
    with pytest.raises(ValueError, match=r"\(B, 2, 2\)"):
        corner_field(torch.ones(1, 4), rows, cols, 5, 4)


def test_constant_fields_give_the_global_kernel() -> None:
    sx, sy, th = torch.tensor([1.3, 0.7]), torch.tensor([2.1, 0.9]), torch.tensor([0.4, -2.0])
    field = gaussian_kernel_field(sx[:, None, None].expand(2, 3, 4), sy[:, None, None].expand(2, 3, 4),
                                  th[:, None, None].expand(2, 3, 4), kernel_size=7, dtype=torch.float64)
    reference = anisotropic_gaussian_kernel(sx, sy, th, 7, dtype=torch.float64).reshape(2, 49, 1, 1)
    torch.testing.assert_close(field, reference.expand(2, 49, 3, 4))


def test_per_pixel_blur_matches_a_direct_loop() -> None:
    torch.manual_seed(0)
    img = torch.rand(2, 2, 6, 5, dtype=torch.float64)
    kernels = torch.softmax(torch.randn(2, 9, 6, 5, dtype=torch.float64), dim=1)
    out = spatially_variant_blur(img, kernels)
    for b in range(2):
        np.testing.assert_allclose(out[b].numpy(), _direct_blur(img[b].numpy(), kernels[b].numpy()), atol=1e-12)


def test_uniform_kernel_map_equals_global_blur() -> None:
    torch.manual_seed(0)
    img = torch.rand(2, 3, 9, 8)
    kernel = anisotropic_gaussian_kernel(torch.tensor([1.0, 2.0]), torch.tensor([0.8, 1.5]),
                                         torch.tensor([0.3, 1.0]), 5)
    kernel_map = kernel.reshape(2, 25, 1, 1).expand(2, 25, 9, 8)
    torch.testing.assert_close(spatially_variant_blur(img, kernel_map), blur(img, kernel), atol=1e-6, rtol=1e-6)
    # and a direct F.conv2d per sample
    padded = F.pad(img, (2, 2, 2, 2), mode="reflect")
    direct = torch.stack([F.conv2d(padded[b : b + 1].transpose(0, 1), kernel[b][None, None])[:, 0] for b in range(2)])
    torch.testing.assert_close(spatially_variant_blur(img, kernel_map), direct, atol=1e-6, rtol=1e-6)


def test_banded_field_blur_equals_the_full_map() -> None:
    torch.manual_seed(0)
    img = torch.rand(1, 3, 11, 7, dtype=torch.float64)
    sx = torch.tensor([[[0.7, 2.0], [1.5, 3.0]]])
    sy = torch.tensor([[[1.0, 0.8], [2.5, 1.2]]])
    th = torch.tensor([[[0.0, 0.5], [1.0, 3.0]]])
    rows, cols = torch.arange(11.0), torch.arange(7.0)
    fields = [corner_field(p, rows, cols, 11, 7) for p in (sx, sy, th)]
    full = spatially_variant_blur(img, gaussian_kernel_field(*fields, kernel_size=5, dtype=torch.float64))
    banded = gaussian_field_blur(img, sx, sy, th, 5, band_elements=3 * 25 * 7 * 2)  # 2 rows per band
    torch.testing.assert_close(banded, full)
    assert not torch.allclose(full, spatially_variant_blur(img, gaussian_kernel_field(
        *[corner_field(p[:, :1, :1].expand(1, 2, 2), rows, cols, 11, 7) for p in (sx, sy, th)], kernel_size=5,
        dtype=torch.float64)))  # the variation matters


def test_uniform_degradation_equals_the_global_path() -> None:
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 16, 12)
    deg = SpatiallyVariantDegradation(scale=4, kernel_size=7, uniform=True, quantize=False)
    result = deg.sample(hr, torch.Generator().manual_seed(3))
    params = result["params"]
    for name in ("sigma_x", "sigma_y", "theta"):
        assert (params[name] == params[name][:, :1, :1]).all()
    kernel = anisotropic_gaussian_kernel(params["sigma_x"][:, 0, 0], params["sigma_y"][:, 0, 0],
                                         params["theta"][:, 0, 0], 7)
    gt = result["kernels"]
    assert gt.shape == (2, 49, 4, 3)
    torch.testing.assert_close(gt, kernel.reshape(2, 49, 1, 1).expand_as(gt))
    torch.testing.assert_close(result["lr"], imresize(blur(hr, kernel), 0.25), atol=1e-6, rtol=1e-5)


def test_gt_map_is_the_kernel_at_lr_pixel_centres() -> None:
    hr = torch.rand(1, 3, 13, 10)
    deg = SpatiallyVariantDegradation(scale=3, kernel_size=5, quantize=False)
    params = deg.sample_params(1, torch.Generator().manual_seed(0))
    gt = deg.kernel_map(params, (13, 10))
    assert gt.shape == (1, 25, 5, 4)  # ceil(13/3), ceil(10/3)
    for i, j in [(0, 0), (2, 1), (4, 3)]:
        y, x = min((i + 0.5) * 3 - 0.5, 12.0), min((j + 0.5) * 3 - 0.5, 9.0)
        t, u = y / 12, x / 9
        values = []
        for name in ("sigma_x", "sigma_y", "theta"):
            c = params[name][0]
            values.append(float((1 - t) * (1 - u) * c[0, 0] + (1 - t) * u * c[0, 1] + t * (1 - u) * c[1, 0]
                                + t * u * c[1, 1]))
        expected = anisotropic_gaussian_kernel(*values, kernel_size=5)
        torch.testing.assert_close(gt[0, :, i, j], expected.flatten())
    lr, kernels = deg(hr, torch.Generator().manual_seed(0))
    assert lr.shape == (1, 3, 5, 4)
    torch.testing.assert_close(kernels, gt)  # same seed, same corners
    assert gt.flatten(2).std(dim=2).max() > 0  # the map varies over the image


def test_isotropic_mode_and_stride_downsampling() -> None:
    deg = SpatiallyVariantDegradation(scale=2, kernel_size=5, isotropic=True, uniform=True, downsample="stride",
                                      quantize=False)
    hr = torch.rand(1, 1, 8, 6, dtype=torch.float64)
    result = deg.sample(hr, torch.Generator().manual_seed(1))
    sigma = result["params"]["sigma_x"][:, 0, 0]
    kernel = isotropic_gaussian_kernel(sigma, 5, dtype=torch.float64)
    assert result["lr"].dtype == torch.float64
    torch.testing.assert_close(result["lr"], blur(hr, kernel)[..., ::2, ::2])
    torch.testing.assert_close(result["kernels"], kernel.reshape(1, 25, 1, 1).expand(1, 25, 4, 3))
    assert deg.setting == 1


def test_registry_seeding_noise_and_quantisation() -> None:
    assert DEGRADATION_REGISTRY.get("SpatiallyVariantDegradation") is SpatiallyVariantDegradation
    opt = {"type": "SpatiallyVariantDegradation", "scale": 2, "kernel_size": 5, "sigma": [0.6, 3.0],
           "noise": {"level": [0.0, 0.05]}}
    deg = build_degradation(opt)
    assert deg.scale == 2 and deg.kernel_size == 5 and deg.setting == 2
    hr = torch.rand(2, 3, 10, 10)
    lr1, k1 = deg(hr, torch.Generator().manual_seed(5))
    lr2, k2 = deg(hr, torch.Generator().manual_seed(5))
    lr3, _ = deg(hr, torch.Generator().manual_seed(6))
    assert torch.equal(lr1, lr2) and torch.equal(k1, k2) and not torch.equal(lr1, lr3)
    assert torch.equal(lr1, torch.round(lr1 * 255) / 255)
    with pytest.raises(KeyError, match="sigmaa"):
        build_degradation({"type": "SpatiallyVariantDegradation", "sigmaa": 1.0})
    with pytest.raises(KeyError, match="level"):
        build_degradation({"type": "SpatiallyVariantDegradation", "noise": {"sigma": 0.1}})


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="too large"):
        spatially_variant_blur(torch.rand(1, 1, 3, 3), torch.ones(1, 49, 3, 3) / 49)
    with pytest.raises(ValueError, match="odd k"):
        spatially_variant_blur(torch.rand(1, 1, 8, 8), torch.ones(1, 10, 8, 8))
    with pytest.raises(ValueError, match="do not match"):
        spatially_variant_blur(torch.rand(1, 1, 8, 8), torch.ones(1, 9, 8, 7) / 9)
    with pytest.raises(ValueError, match="odd"):
        SpatiallyVariantDegradation(kernel_size=4)
    with pytest.raises(ValueError, match="downsample"):
        SpatiallyVariantDegradation(downsample="nearest")
    with pytest.raises(ValueError, match="float"):
        SpatiallyVariantDegradation(kernel_size=3)(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
