"""blur / imresize / noise / quantize / stride_downsample against independent derivations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dan_blocks.basicsr  # noqa: F401  (makes basicsr importable, registers dan-blocks)
from dan_blocks.degradations import (
    add_gaussian_noise,
    anisotropic_gaussian_kernel,
    blur,
    imresize,
    isotropic_gaussian_kernel,
    quantize,
    stride_downsample,
)


def basicsr_imresize(img: torch.Tensor, scale: float) -> torch.Tensor:
    """BasicSR's single-image MATLAB imresize (imported after dan_blocks, which makes basicsr importable)."""
    from basicsr.utils.matlab_functions import imresize as reference

    return reference(img, scale)


def _blur_numpy(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlation written as an explicit sum over taps on a reflect-padded (C, H, W) array."""
    k = kernel.shape[0]
    r = k // 2
    padded = np.pad(img, ((0, 0), (r, r), (r, r)), mode="reflect")
    h, w = img.shape[1:]
    out = np.zeros_like(img, dtype=np.float64)
    for i in range(k):
        for j in range(k):
            out += kernel[i, j] * padded[:, i : i + h, j : j + w]
    return out


def test_blur_per_sample_matches_explicit_sum() -> None:
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(3, 2, 13, 17, generator=gen, dtype=torch.float64)
    kernels = torch.rand(3, 5, 5, generator=gen, dtype=torch.float64)  # asymmetric: catches flips
    out = blur(img, kernels)
    for b in range(3):
        np.testing.assert_allclose(
            out[b].numpy(), _blur_numpy(img[b].numpy(), kernels[b].numpy()), atol=1e-12
        )


def test_blur_per_sample_matches_conv_loop_and_shared_kernel() -> None:
    gen = torch.Generator().manual_seed(1)
    img = torch.rand(4, 3, 24, 20, generator=gen)
    kernels = anisotropic_gaussian_kernel(torch.rand(4, generator=gen) * 3 + 0.6, 1.5, 0.7, 11)
    out = blur(img, kernels)
    for b in range(4):
        padded = F.pad(img[b : b + 1], (5, 5, 5, 5), mode="reflect")
        ref = torch.cat([F.conv2d(padded[:, c : c + 1], kernels[b][None, None]) for c in range(3)], dim=1)
        torch.testing.assert_close(out[b : b + 1], ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(blur(img, kernels[:, None]), out, rtol=0, atol=0)
    shared = blur(img, kernels[0])
    torch.testing.assert_close(shared, blur(img, kernels[:1].expand(4, -1, -1)), rtol=0, atol=1e-6)


def test_blur_keeps_device_dtype_and_preserves_constants() -> None:
    img = torch.full((2, 3, 9, 9), 0.3, dtype=torch.float64)
    out = blur(img, isotropic_gaussian_kernel(torch.tensor([1.0, 2.0]), 7))
    assert out.dtype == torch.float64 and out.shape == img.shape
    torch.testing.assert_close(out, img)


@pytest.mark.parametrize(
    ("img_shape", "kernels", "match"),
    [
        ((1, 3, 8, 8), torch.ones(1, 21, 21) / 441, "too large"),
        ((3, 8, 8), torch.ones(1, 3, 3) / 9, "must be"),
        ((2, 3, 8, 8), torch.ones(3, 3, 3) / 9, "3 kernels for a batch of 2"),
        ((1, 3, 8, 8), torch.ones(1, 3, 5) / 15, "must be"),
    ],
)
def test_blur_bad_inputs_are_clear_errors(
    img_shape: tuple[int, ...], kernels: torch.Tensor, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        blur(torch.rand(img_shape), kernels)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2, 3, 4, 0.75])
@pytest.mark.parametrize(("h", "w"), [(37, 53), (24, 24), (101, 12)])
def test_imresize_matches_basicsr(scale: float, h: int, w: int) -> None:
    gen = torch.Generator().manual_seed(h * w)
    img = torch.rand(2, 3, h, w, generator=gen)
    out = imresize(img, scale)
    ref = torch.stack([basicsr_imresize(img[i], scale) for i in range(2)])
    assert out.shape == ref.shape == (2, 3, int(np.ceil(h * scale)), int(np.ceil(w * scale)))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_imresize_hand_cases() -> None:
    # constants stay constant; upscaling by 1 is the identity; a (C, H, W) image keeps its rank
    const = torch.full((1, 1, 10, 7), 0.42)
    torch.testing.assert_close(imresize(const, 1 / 3), torch.full((1, 1, 4, 3), 0.42))
    x = torch.rand(1, 2, 6, 5)
    torch.testing.assert_close(imresize(x, 1), x, rtol=0, atol=1e-6)
    assert imresize(x[0], 2).shape == (2, 12, 10)
    with pytest.raises(ValueError, match="must be"):
        imresize(torch.rand(5, 5), 0.5)


def test_blur_then_imresize_matches_the_release_pipeline_reference() -> None:
    # the release: BatchBlur (reflect pad, grouped conv) then MATLAB imresize; here: an explicit tap sum in
    # float64 and BasicSR's imresize (the release's numbers), on odd sizes and k = 11 / 21 / 31.
    gen = torch.Generator().manual_seed(5)
    for k, s, (h, w) in ((11, 2, (33, 41)), (21, 3, (45, 37)), (31, 4, (49, 51))):
        img = torch.rand(2, 3, h, w, generator=gen)
        kernels = torch.cat(
            [isotropic_gaussian_kernel(2.2, k), anisotropic_gaussian_kernel(3.0, 1.1, 0.5, k)]
        )
        ours = imresize(blur(img, kernels), 1 / s)
        for b in range(2):
            blurred = torch.from_numpy(
                _blur_numpy(img[b].double().numpy(), kernels[b].double().numpy())
            ).float()
            torch.testing.assert_close(ours[b], basicsr_imresize(blurred, 1 / s), rtol=0, atol=1e-5)


def test_stride_downsample_hand_case() -> None:
    x = torch.arange(35.0).reshape(1, 1, 5, 7)
    out = stride_downsample(x, 2)
    assert out.shape == (1, 1, 3, 4)
    assert out[0, 0, 1].tolist() == [14.0, 16.0, 18.0, 20.0]
    assert stride_downsample(x, 3, offset=1)[0, 0].tolist() == [[8.0, 11.0], [29.0, 32.0]]
    with pytest.raises(ValueError, match="scale"):
        stride_downsample(x, 0)


def test_gaussian_noise_per_sample_levels() -> None:
    img = torch.full((3, 3, 64, 64), 0.5)
    out = add_gaussian_noise(
        img, torch.tensor([0.0, 0.05, 0.1]), torch.Generator().manual_seed(0), clip=False
    )
    assert torch.equal(out[0], img[0])
    for b, level in ((1, 0.05), (2, 0.1)):
        assert (out[b] - 0.5).std().item() == pytest.approx(level, rel=0.05)
    again = add_gaussian_noise(
        img, torch.tensor([0.0, 0.05, 0.1]), torch.Generator().manual_seed(0), clip=False
    )
    assert torch.equal(out, again)
    clipped = add_gaussian_noise(torch.ones(1, 1, 8, 8), 0.5, torch.Generator().manual_seed(0))
    assert clipped.max() <= 1.0
    with pytest.raises(ValueError, match="levels"):
        add_gaussian_noise(img, torch.ones(2))


def test_quantize_equals_uint8_round_trip() -> None:
    x = torch.rand(2, 3, 5, 5, dtype=torch.float64) * 1.2 - 0.1
    expected = np.clip(x.numpy() * 255.0, 0, 255).round().astype(np.uint8).astype(np.float64) / 255.0
    np.testing.assert_allclose(quantize(x).numpy(), expected, atol=1e-12)


def test_blur_even_kernel_uses_the_release_padding() -> None:
    # the release's BatchBlur pads (k//2 before, k//2 - 1 after) for an even k; written here with NumPy
    gen = torch.Generator().manual_seed(2)
    img = torch.rand(1, 2, 9, 11, generator=gen, dtype=torch.float64)
    kernel = torch.rand(4, 4, generator=gen, dtype=torch.float64)
    padded = np.pad(img[0].numpy(), ((0, 0), (2, 1), (2, 1)), mode="reflect")
    expected = sum(kernel[i, j].item() * padded[:, i : i + 9, j : j + 11] for i in range(4) for j in range(4))
    np.testing.assert_allclose(blur(img, kernel)[0].numpy(), expected, atol=1e-12)
