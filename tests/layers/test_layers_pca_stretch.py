"""KernelStretch and PCAEncoder against direct derivations."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dan_blocks import PCAEncoder
from dan_blocks.layers import fit_pca_matrix, stretch_code


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 4), c=st.integers(1, 16), h=st.integers(1, 20), w=st.integers(1, 20))
def test_stretch_equals_expand(b: int, c: int, h: int, w: int) -> None:
    code = torch.randn(b, c)
    want = code.unsqueeze(-1).unsqueeze(-1).expand(b, c, h, w)
    assert torch.equal(stretch_code(code, (h, w)), want)
    assert torch.equal(stretch_code(code[:, :, None, None], (h, w)), want)


def test_stretch_map_of_same_size_passes_through_and_bilinear_mode() -> None:
    m = torch.randn(2, 3, 5, 6)
    assert stretch_code(m, (5, 6)) is m
    small = torch.randn(1, 2, 2, 2)
    out = stretch_code(small, (4, 4), mode="bilinear")
    torch.testing.assert_close(out, torch.nn.functional.interpolate(small, size=(4, 4), mode="bilinear"))
    with pytest.raises(ValueError, match="stretch mode"):
        stretch_code(small, (4, 4), mode="cubic")
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        stretch_code(torch.randn(2, 3, 4), (4, 4))


def _low_rank_kernels(n: int, k: int, rank: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(k * k, rank, generator=g, dtype=torch.float64))
    mean = torch.rand(k * k, generator=g, dtype=torch.float64)
    coeff = torch.randn(n, rank, generator=g, dtype=torch.float64) * torch.linspace(3, 1, rank, dtype=torch.float64)
    return (mean + coeff @ basis.T).reshape(n, k, k), basis, mean


def test_fit_recovers_a_known_low_rank_basis() -> None:
    kernels, basis, _mean = _low_rank_kernels(400, 7, rank=4)
    matrix, _ = fit_pca_matrix(kernels, 4)
    # same subspace: the projectors agree
    torch.testing.assert_close(matrix.double() @ matrix.double().T, basis @ basis.T, atol=1e-5, rtol=0)
    torch.testing.assert_close(matrix.T @ matrix, torch.eye(4), atol=1e-5, rtol=0)


def test_centred_encoder_reconstructs_fitted_kernels() -> None:
    kernels, _, _ = _low_rank_kernels(300, 5, rank=3, seed=1)
    enc = PCAEncoder.fit(kernels.float(), 3, center=True)
    torch.testing.assert_close(enc.mean.double(), kernels.reshape(300, -1).mean(0), atol=1e-6, rtol=0)
    torch.testing.assert_close(enc.decode(enc.encode(kernels.float())), kernels.float(), atol=1e-5, rtol=1e-5)


def test_release_encoding_is_a_plain_product_and_decode_its_transpose() -> None:
    enc = PCAEncoder.fit(torch.rand(200, 5, 5), 6)
    k = torch.rand(4, 5, 5)
    flat = k.reshape(4, 25)
    code = enc.encode(k)
    torch.testing.assert_close(code, flat @ enc.matrix)
    torch.testing.assert_close(enc.decode(code).reshape(4, 25), code @ enc.matrix.T)


def test_fit_is_deterministic_with_fixed_signs() -> None:
    kernels = torch.rand(300, 7, 7, generator=torch.Generator().manual_seed(3))
    a, _ = fit_pca_matrix(kernels, 5)
    b, _ = fit_pca_matrix(kernels[torch.randperm(300)], 5)  # row order must not matter
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    pivot = a.abs().argmax(dim=0)
    assert (a[pivot, torch.arange(5)] > 0).all()


def test_per_pixel_encode_equals_per_kernel_encode() -> None:
    enc = PCAEncoder.fit(torch.rand(100, 5, 5), 4, center=True)
    kernels = torch.rand(2, 3, 4, 5, 5)  # (B, h, w, k, k)
    per_pixel = kernels.reshape(2, 3, 4, 25).permute(0, 3, 1, 2)  # (B, k*k, h, w)
    codes = enc.encode(per_pixel)
    assert codes.shape == (2, 4, 3, 4)
    direct = enc.encode(kernels.reshape(-1, 5, 5)).reshape(2, 3, 4, 4).permute(0, 3, 1, 2)
    torch.testing.assert_close(codes, direct)
    torch.testing.assert_close(enc.decode(codes), enc.decode(direct.permute(0, 2, 3, 1).reshape(-1, 4))
                               .reshape(2, 3, 4, 25).permute(0, 3, 1, 2))


def test_save_load_round_trip_keeps_metadata(tmp_path) -> None:
    enc = PCAEncoder.fit(torch.rand(100, 5, 5), 4, center=True, metadata={"setting": 1, "seed": 7})
    enc.save(tmp_path / "p.pt")
    back = PCAEncoder.load(tmp_path / "p.pt")
    assert torch.equal(back.matrix, enc.matrix) and torch.equal(back.mean, enc.mean)
    assert back.center and back.metadata["seed"] == 7 and back.metadata["samples"] == 100
    assert (back.kernel_size, back.code_length) == (5, 4)
    assert not list(tmp_path.glob("*.tmp*"))


def test_release_style_plain_tensor_file(tmp_path) -> None:
    matrix = torch.linalg.qr(torch.randn(441, 10))[0]
    torch.save(matrix, tmp_path / "pca_matrix.pth")
    enc = PCAEncoder.load(tmp_path / "pca_matrix.pth")
    assert not enc.center and torch.equal(enc.matrix, matrix)
    assert torch.equal(PCAEncoder.from_matrix(matrix[None]).matrix, matrix)  # the (1, k*k, C) buffer form
    dirac = enc.dirac()
    assert dirac.shape == (1, 21, 21) and dirac[0, 10, 10] == 1 and dirac.sum() == 1


def test_mismatches_name_both_sizes(tmp_path) -> None:
    enc = PCAEncoder.from_matrix(torch.randn(121, 10))
    with pytest.raises(ValueError, match=r"11x11 kernels \(121 values\).*9, 9"):
        enc.encode(torch.rand(2, 9, 9))
    with pytest.raises(ValueError, match="121 channels"):
        enc.encode(torch.rand(2, 81, 3, 3))
    with pytest.raises(ValueError, match=r"11x11 kernels \(121 values\), got 12x12 \(144 values\)"):
        enc.check(kernel_size=12)
    with pytest.raises(ValueError, match="10-d codes, expected 15"):
        enc.check(code_length=15)
    with pytest.raises(ValueError, match="odd k"):
        PCAEncoder.from_matrix(torch.randn(100, 3))
    torch.save({"foo": 1}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad\.pt"):
        PCAEncoder.load(tmp_path / "bad.pt")


def test_release_encoder_keeps_a_zero_mean_buffer() -> None:
    """Regression: an uncentred encoder carried its fitted mean, so its model's state dict looked centred and
    could not be converted to the release's layout."""
    from dan_blocks.formats.official import to_release_state_dict

    kernels = torch.rand(200, 5, 5) + 1.0
    enc = PCAEncoder.fit(kernels, 3)
    assert not enc.center and torch.equal(enc.mean, torch.zeros(25))
    assert "encoder" in to_release_state_dict({"pca.matrix": enc.matrix, "pca.mean": enc.mean})
    centred = PCAEncoder.fit(kernels, 3, center=True)
    assert centred.mean.abs().sum() > 0
    with pytest.raises(ValueError, match="centred PCA"):
        to_release_state_dict({"pca.matrix": centred.matrix, "pca.mean": centred.mean})
