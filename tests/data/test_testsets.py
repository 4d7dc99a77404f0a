"""make_testset / dan-blocks make-testset: Gaussian8 and aniso protocols, manifest round trip, errors."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F

import dan_blocks.basicsr  # noqa: F401  (makes basicsr importable, registers dan-blocks)
from dan_blocks.cli.make_testset import main as make_testset_main
from dan_blocks.data import make_testset
from dan_blocks.data.image_io import read_image, write_image


@pytest.fixture()
def hr_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "hr"
    folder.mkdir()
    astronaut = skimage.data.astronaut()
    write_image(folder / "a.png", astronaut[100:147, 150:203])  # 47 x 53: not multiples of 2/3/4
    write_image(folder / "b.png", skimage.data.coffee()[50:90, 60:110])
    return folder


def _reference_lr(gt: np.ndarray, kernel: np.ndarray, scale: int) -> np.ndarray:
    """Independent path: conv2d per channel on a reflect-padded image, BasicSR's imresize, uint8 rounding."""
    from basicsr.utils.matlab_functions import imresize as basicsr_imresize

    x = torch.from_numpy(gt.transpose(2, 0, 1).astype(np.float64) / 255.0)[:, None]
    r = kernel.shape[0] // 2
    blurred = F.conv2d(
        F.pad(x, (r, r, r, r), mode="reflect"), torch.from_numpy(kernel.astype(np.float64))[None, None]
    )
    lr = basicsr_imresize(blurred[:, 0].float(), 1 / scale)
    return np.clip(lr.numpy() * 255.0, 0, 255).round().astype(np.uint8).transpose(1, 2, 0)


def test_gaussian8_manifest_round_trip(hr_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "g8"
    manifest = make_testset(hr_dir, out, protocol="gaussian8", scale=3, progress=False)
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk["protocol"] == "gaussian8" and on_disk["scale"] == 3 and on_disk["kernel_size"] == 21
    assert len(on_disk["pairs"]) == 16
    sigmas = [p["sigma"] for p in on_disk["pairs"] if p["gt"] == "gt/a.png"]
    np.testing.assert_allclose(sigmas, np.linspace(1.35, 2.40, 8), atol=1e-6)
    for pair in on_disk["pairs"][::5]:
        gt = read_image(out / pair["gt"])
        assert gt.shape[0] % 3 == 0 and gt.shape[1] % 3 == 0
        kernel = np.load(out / pair["kernel"])
        assert kernel.shape == (21, 21) and abs(kernel.sum() - 1) < 1e-5
        r = np.arange(21) - 10
        expected = np.exp(-(r[None] ** 2 + r[:, None] ** 2) / (2 * pair["sigma"] ** 2))
        np.testing.assert_allclose(kernel, expected / expected.sum(), atol=1e-7)
        lr = read_image(out / pair["lr"])
        assert lr.shape == (gt.shape[0] // 3, gt.shape[1] // 3, 3)
        diff = np.abs(lr.astype(int) - _reference_lr(gt, kernel, 3).astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.01  # equal up to float32 rounding at .5 boundaries


def test_aniso_is_seeded_and_records_kernel_parameters(hr_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    a = make_testset(hr_dir, tmp_path / "a", protocol="aniso", scale=2, seed=3, progress=False)
    b = make_testset(hr_dir, tmp_path / "b", protocol="aniso", scale=2, seed=3, progress=False)
    c = make_testset(hr_dir, tmp_path / "c", protocol="aniso", scale=2, seed=4, progress=False)
    assert a["pairs"] == b["pairs"]
    assert a["pairs"][0]["sigma_x"] != c["pairs"][0]["sigma_x"]
    pair = a["pairs"][0]
    assert pair["lr"] == "lr_x2/a.png" and pair["kernel"] == "gt_k_x2/a.npy"
    assert 0.6 <= pair["sigma_x"] <= 5 and -np.pi <= pair["theta"] <= np.pi
    kernel = np.load(tmp_path / "a" / pair["kernel"])
    assert kernel.shape == (11, 11)
    assert np.array_equal(read_image(tmp_path / "a" / pair["lr"]), read_image(tmp_path / "b" / pair["lr"]))


def test_builtin_source_and_cli(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture) -> None:
    code = make_testset_main(
        [
            "--protocol",
            "aniso",
            "--scale",
            "4",
            "--seed",
            "1",
            "--quiet",
            "--max-size",
            "101",
            "builtin:skimage-test",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0 and "3 LR/HR pairs" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["source"] == "builtin:skimage-test" and manifest["kernel_size"] == 31
    gt = read_image(tmp_path / "out" / "gt" / "astronaut.png")
    assert np.array_equal(gt, skimage.data.astronaut()[205:305, 205:305])  # centre crop 101, mod-crop 100
    assert read_image(tmp_path / "out" / "lr_x4" / "chelsea.png").shape == (25, 25, 3)


def test_errors_are_clear(
    hr_dir: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(ValueError, match="unknown protocol 'gaussian9'"):
        make_testset(hr_dir, tmp_path / "x", protocol="gaussian9")
    with pytest.raises(ValueError, match="Gaussian8 is defined for scales"):
        make_testset(hr_dir, tmp_path / "x", protocol="gaussian8", scale=5, progress=False)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        make_testset(hr_dir, tmp_path / "x", protocol="aniso", scale=4, kernel_size=101, progress=False)
    (hr_dir / "broken.png").write_bytes(b"not a png")
    with pytest.raises(OSError, match=r"broken\.png"):
        make_testset(hr_dir, tmp_path / "y", progress=False)
    assert make_testset_main(["--quiet", str(tmp_path / "missing"), str(tmp_path / "z")]) == 1  # failed work
    assert "missing" in capsys.readouterr().err
