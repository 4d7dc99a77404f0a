"""dan_blocks.metrics (kernel L1 and kernel PSNR, raw and aligned) and v1's reconstructed kernels, against
hand-computed cases and analytic Gaussians."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import dan_blocks
from dan_blocks.archs import DAN, RestorerV1
from dan_blocks.degradations import IsotropicGaussianKernel
from dan_blocks.layers import PCAEncoder
from dan_blocks.metrics import centre_of_mass, kernel_error, kernel_psnr, shift_kernels

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gaussian(k: int, sigma: float, dy: float = 0.0, dx: float = 0.0) -> Tensor:
    """(1, k, k) Gaussian centred (dy, dx) taps off the kernel centre, sampled and normalised (float64)."""
    axis = torch.arange(k, dtype=torch.float64) - k // 2
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    g = torch.exp(-((y - dy) ** 2 + (x - dx) ** 2) / (2 * sigma**2))
    return (g / g.sum())[None]


def test_kernel_error_hand_computed() -> None:
    a = torch.tensor([[[0.0, 0.5, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.0]]])
    b = torch.tensor([[[0.25, 0.25, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.0]]])
    assert kernel_error(a, b).tolist() == [0.5]  # |0 - .25| + |.5 - .25|
    assert kernel_error(torch.cat([a, b]), torch.cat([b, b])).tolist() == [0.5, 0.0]
    # a 3x3 truth is zero-padded on its centre tap to a 5x5 estimate
    big = torch.zeros(1, 5, 5)
    big[0, 1:4, 1:4] = b[0]
    assert kernel_error(big, b).tolist() == [0.0]


def test_kernel_error_of_maps_averages_pixels_and_broadcasts_a_global_kernel() -> None:
    a = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    b = torch.zeros(1, 3, 3)
    b[0, 1, 1] = 1.0
    # a 1x2 map: pixel 0 holds a, pixel 1 holds b; the truth b everywhere -> errors 2 and 0, mean 1
    estimate = torch.stack([a[0].reshape(9), b[0].reshape(9)], dim=-1)[None, :, None, :]  # (1, 9, 1, 2)
    assert kernel_error(estimate, b).tolist() == [1.0]
    truth_map = b.reshape(1, 9, 1, 1).expand(1, 9, 1, 2)
    assert kernel_error(estimate, truth_map).tolist() == [1.0]


def test_kernel_psnr_hand_computed() -> None:
    truth = torch.full((1, 5, 5), 0.04, dtype=torch.float64)
    estimate = truth + 0.01  # RMSE 0.01 over the taps -> 20 log10(1 / 0.01) = 40 dB
    assert kernel_psnr(estimate, truth).item() == pytest.approx(40.0, abs=1e-9)
    assert kernel_psnr(truth, truth).item() == math.inf


def test_centre_of_mass_and_integer_shift_of_a_dirac() -> None:
    dirac = torch.zeros(1, 7, 7, dtype=torch.float64)
    dirac[0, 2, 5] = 1.0
    assert centre_of_mass(dirac).tolist() == [[-1.0, 2.0]]
    for method in ("fourier", "cubic"):
        moved = shift_kernels(dirac, torch.tensor([[1.0, -2.0]]), method)
        expected = torch.zeros_like(dirac)
        expected[0, 3, 3] = 1.0
        torch.testing.assert_close(moved, expected, atol=1e-9, rtol=0)


@pytest.mark.parametrize("sigma", [1.6, 2.5, 3.0])
@pytest.mark.parametrize("shift", [(0.37, -0.61), (-1.4, 0.25)])
def test_aligned_error_ignores_a_subpixel_shift(sigma: float, shift: tuple[float, float]) -> None:
    truth = gaussian(21, sigma)
    shifted = gaussian(21, sigma, *shift)
    raw = kernel_error(shifted, truth).item()
    aligned = kernel_error(shifted, truth, align=True).item()
    assert raw > 0.1  # compared tap by tap, a correctly shaped but shifted kernel scores badly
    assert aligned < 0.05 * raw and aligned < 0.01
    assert kernel_psnr(shifted, truth, align=True).item() > kernel_psnr(shifted, truth).item() + 20
    # the shape still counts once aligned: another width is not forgiven
    assert kernel_error(gaussian(21, sigma * 1.5, *shift), truth, align=True).item() > 0.1


def test_aligned_error_of_maps() -> None:
    truth = gaussian(15, 2.0).float()
    shifted = gaussian(15, 2.0, 0.5, 0.3).float()
    est_map = shifted.reshape(1, 225, 1, 1).expand(1, 225, 2, 3)
    raw = kernel_error(est_map, truth)
    aligned = kernel_error(est_map, truth, align=True)
    assert raw.shape == aligned.shape == (1,)
    assert raw.item() > 0.1 and aligned.item() < 1e-3


# -- v1: kernels that codes stand for ---------------------------------------------------------------------
class FixedCode(nn.Module):
    """A code estimator that returns a given code (the exact code of a true kernel)."""

    output_kind = "code"

    def __init__(self, code: Tensor) -> None:
        super().__init__()
        self.code_length = code.shape[1]
        self.register_buffer("code", code)

    def forward(self, sr: Tensor, lr: Tensor) -> Tensor:
        return self.code.expand(lr.shape[0], -1)


def test_exact_code_of_setting1_kernels_reconstructs_them_through_dan_v1() -> None:
    pca = dan_blocks.default_pca(21, 10, 1)
    sampler = IsotropicGaussianKernel(21, (0.2, 4.0))
    kernels = sampler(64, torch.Generator().manual_seed(3)).float()
    codes = kernels.reshape(64, -1) @ pca.matrix  # the release encoding, written out
    for index in (0, 17, 40, 63):
        restorer = RestorerV1(nf=8, nb=1, scale=2, reduction=4)
        model = DAN(restorer, FixedCode(codes[index : index + 1]), pca, loop=2).eval()
        with torch.no_grad():
            out = model(torch.rand(1, 3, 6, 6))
        for kernel in out.kernels:
            assert kernel_error(kernel, kernels[index : index + 1]).item() < 0.01
        # the plain decode c P^T, what the release's kernel error used, is off by about the whole mass
        decoded = pca.decode(codes[index : index + 1])
        assert kernel_error(decoded, kernels[index : index + 1]).item() > 0.9


def test_reconstruct_is_the_projection_onto_mean_plus_span() -> None:
    # m + P P^T (k - m) for any kernel: the best the code can say, written independently
    for setting, k, c in ((1, 21, 10), (2, 11, 10), (2, 21, 10), (2, 31, 15)):
        pca = dan_blocks.default_pca(k, c, setting)
        assert pca.has_kernel_mean
        kernel = torch.rand(3, k, k, generator=torch.Generator().manual_seed(k))
        kernel = kernel / kernel.sum(dim=(1, 2), keepdim=True)
        p, m = pca.matrix.double(), pca.kernel_mean.double()
        flat = kernel.reshape(3, -1).double()
        expected = m + (flat - m) @ p @ p.T
        got = pca.reconstruct(pca.encode(kernel))
        torch.testing.assert_close(got.reshape(3, -1).double(), expected, atol=1e-6, rtol=0)


def test_shipped_means_are_the_training_distributions() -> None:
    # the mean of a fresh draw from the settings table is close to the shipped one (a different draw)
    pca = dan_blocks.default_pca(21, 10, 1)
    fresh = IsotropicGaussianKernel(21, (0.2, 4.0))(20000, torch.Generator().manual_seed(11)).double()
    assert (fresh.mean(dim=0).reshape(-1) - pca.kernel_mean.double()).abs().sum().item() < 0.01
    torch.testing.assert_close(pca.kernel_mean.sum(), torch.tensor(1.0), atol=1e-5, rtol=0)


def test_kernel_mean_survives_save_and_load(tmp_path) -> None:
    kernels = torch.rand(40, 5, 5, generator=torch.Generator().manual_seed(0))
    pca = PCAEncoder.fit(kernels, 4)
    assert pca.has_kernel_mean
    torch.testing.assert_close(pca.kernel_mean, kernels.reshape(40, -1).mean(dim=0))
    pca.save(tmp_path / "p.pt")
    back = PCAEncoder.load(tmp_path / "p.pt")
    torch.testing.assert_close(back.kernel_mean, pca.kernel_mean)
    assert "kernel_mean" not in back.state_dict()  # checkpoints keep their keys
    plain = PCAEncoder.from_matrix(pca.matrix)
    assert not plain.has_kernel_mean
    torch.testing.assert_close(plain.reconstruct(torch.ones(1, 4)), plain.decode(torch.ones(1, 4)))


# -- the release's Gaussian8 folders ----------------------------------------------------------------------
def test_release_gaussian8_folder_reads_with_pairs_and_kernels(tmp_path) -> None:
    import dan_blocks.basicsr  # noqa: F401
    from dan_blocks.basicsr import BlindSRPairedDataset
    from dan_blocks.data import load_builtin, write_image
    from dan_blocks.degradations import isotropic_gaussian_kernel

    scale = 4
    (tmp_path / "HR" / "x4").mkdir(parents=True)
    (tmp_path / "LRblur" / "x4").mkdir(parents=True)
    photos = list(load_builtin("builtin:skimage-test"))[:2]
    expected = {}
    for name, img in photos:
        hr = np.ascontiguousarray(img[:48, :40])
        for sigma in np.linspace(1.8, 3.2, 8).tolist()[::3]:  # the release's Gaussian8 x4 sigmas, as numpy gives
            stem = f"sig{sigma!r}_{name}"  # the release writes the raw float, e.g. sig2.4000000000000004
            lr = np.ascontiguousarray(hr[::scale, ::scale])  # any LR of the right size (content is not checked)
            write_image(tmp_path / "HR" / "x4" / f"{stem}.png", hr)
            write_image(tmp_path / "LRblur" / "x4" / f"{stem}.png", lr)
            expected[f"{stem}.png"] = sigma
    assert any("0000000000" in n for n in expected)  # a float written raw is among them
    data = BlindSRPairedDataset({"name": "rel", "type": "BlindSRPairedDataset", "dataroot": str(tmp_path),
                                 "scale": scale, "phase": "val"})
    assert len(data) == len(expected)
    for item in data:
        name = item["lq_path"].split("/")[-1]
        assert item["gt_path"].endswith(f"HR/x4/{name}") and "LRblur/x4/" in item["lq_path"]
        assert item["lq"].shape == (3, 12, 10) and item["gt"].shape == (3, 48, 40)
        truth = isotropic_gaussian_kernel(torch.tensor([expected[name]], dtype=torch.float64), 21)[0].float()
        torch.testing.assert_close(item["kernel"], truth)
    # a name that does not parse is named
    write_image(tmp_path / "LRblur" / "x4" / "baby.png", np.zeros((12, 10, 3), np.uint8))
    write_image(tmp_path / "HR" / "x4" / "baby.png", np.zeros((48, 40, 3), np.uint8))
    with pytest.raises(ValueError, match=r"cannot read sigma from .*baby\.png"):
        BlindSRPairedDataset({"dataroot": str(tmp_path), "scale": scale})[0]
