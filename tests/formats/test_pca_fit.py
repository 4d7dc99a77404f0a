"""PCA fitting (the release's method), reproducibility, the shipped default matrices and the fit-pca CLI."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

from dan_blocks.cli.fit_pca import main as fit_pca_main
from dan_blocks.degradations import fit_default_pca, sample_training_kernels
from dan_blocks.layers import PCAEncoder

PCA_DIR = pathlib.Path(__file__).resolve().parents[2] / "dan_blocks" / "formats" / "pca"
SHIPPED = {
    "setting1_k21_c10": (1, 21, 10),
    "setting2_k11_c10": (2, 11, 10),
    "setting2_k21_c10": (2, 21, 10),
    "setting2_k31_c15": (2, 31, 15),
}


def test_same_seed_gives_identical_matrices_and_other_seeds_differ() -> None:
    a = fit_default_pca(11, 6, setting=2, samples=600, seed=4)
    b = fit_default_pca(11, 6, setting=2, samples=600, seed=4)
    c = fit_default_pca(11, 6, setting=2, samples=600, seed=5)
    assert torch.equal(a.matrix, b.matrix)
    assert not torch.equal(a.matrix, c.matrix)


def test_matrix_spans_the_top_eigenvectors_of_the_covariance() -> None:
    # independent derivation: eigh of the covariance of the same kernels (NumPy) instead of an SVD
    kernels = sample_training_kernels(1, 11, 800, seed=2).reshape(800, -1).numpy()
    enc = fit_default_pca(11, 5, setting=1, samples=800, seed=2)
    centred = kernels - kernels.mean(axis=0)
    _, vecs = np.linalg.eigh(centred.T @ centred)
    top = vecs[:, ::-1][:, :5]
    p = enc.matrix.double().numpy()
    np.testing.assert_allclose(p @ p.T, top @ top.T, atol=1e-5)  # same subspace (projectors agree)
    np.testing.assert_allclose(p.T @ p, np.eye(5), atol=1e-6)


def test_sampled_training_kernels_follow_the_setting() -> None:
    iso = sample_training_kernels(1, 21, 50, seed=0)
    torch.testing.assert_close(iso, iso.transpose(1, 2))  # isotropic kernels are symmetric
    aniso = sample_training_kernels(2, 11, 50, seed=0)
    torch.testing.assert_close(aniso.sum(dim=(1, 2)), torch.ones(50, dtype=torch.float64))
    with pytest.raises(ValueError, match="setting"):
        sample_training_kernels(3, 21, 10)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_matrices_load_with_metadata(name: str) -> None:
    setting, k, c = SHIPPED[name]
    enc = PCAEncoder.load(PCA_DIR / f"{name}.pt")
    assert (enc.kernel_size, enc.code_length, enc.center) == (k, c, False)
    meta = enc.metadata
    assert (meta["setting"], meta["samples"], meta["seed"], meta["kernel_size"], meta["code_length"]) == (
        setting,
        30000,
        0,
        k,
        c,
    )
    assert meta["sigma_range"] == ([0.2, 4.0] if setting == 1 else [0.6, 5.0])
    p = enc.matrix.double()
    torch.testing.assert_close(p.T @ p, torch.eye(c, dtype=torch.float64), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_shipped_setting1_matrix_equals_a_fresh_fit() -> None:
    fresh = fit_default_pca(21, 10, setting=1, samples=30000, seed=0)
    shipped = PCAEncoder.load(PCA_DIR / "setting1_k21_c10.pt")
    torch.testing.assert_close(fresh.matrix, shipped.matrix, rtol=0, atol=1e-6)


def test_cli_writes_a_loadable_file_with_metadata(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "sub" / "p.pt"
    code = fit_pca_main(
        [
            "--kernel-size",
            "11",
            "--code-length",
            "4",
            "--setting",
            "2",
            "--samples",
            "300",
            "--seed",
            "1",
            "-o",
            str(out),
        ]
    )
    assert code == 0 and "saved PCA" in capsys.readouterr().out
    enc = PCAEncoder.load(out)  # weights_only load: metadata must be plain types
    assert torch.equal(enc.matrix, fit_default_pca(11, 4, 2, 300, 1).matrix)
    assert enc.metadata["torch"] == str(torch.__version__) and enc.metadata["center"] is False
    assert fit_pca_main(["--kernel-size", "10", "-o", str(tmp_path / "bad.pt")]) == 2
    assert not (tmp_path / "bad.pt").exists()
