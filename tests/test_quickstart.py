"""``dan-blocks quickstart``: the mechanics on a reduced run (the full run is measured, not tested here)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import dan_blocks.basicsr  # noqa: F401  (makes basicsr importable, registers dan-blocks)
from dan_blocks.cli import quickstart
from dan_blocks.cli.main import main

OPTIONS = Path(__file__).resolve().parents[1] / "basicsr_options"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _y(img_bgr: np.ndarray) -> np.ndarray:
    img = img_bgr.astype(np.float64)
    return 16.0 + (65.481 * img[..., 2] + 128.553 * img[..., 1] + 24.966 * img[..., 0]) / 255.0


def _psnr_y(a: np.ndarray, b: np.ndarray, crop: int) -> float:
    mse = np.mean((_y(a)[crop:-crop, crop:-crop] - _y(b)[crop:-crop, crop:-crop]) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_shipped_quickstart_yml_is_what_the_command_trains() -> None:
    from basicsr.utils.options import ordered_yaml

    with open(OPTIONS / "quickstart.yml") as handle:
        shipped = yaml.load(handle, Loader=ordered_yaml()[0])
    expected = quickstart.quickstart_train_options()
    assert json.loads(json.dumps(shipped)) == json.loads(json.dumps(expected))


def test_reduced_quickstart_writes_results_pictures_and_the_bicubic_baseline(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(quickstart.NETWORK, "nf", 8)
    monkeypatch.setattr(quickstart, "GT_SIZE", 32)
    monkeypatch.setattr(quickstart, "BATCH", 2)
    threads = torch.get_num_threads()
    try:
        assert main(["quickstart", "--out", str(tmp_path / "qs"), "--iters", "2"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "qs"
    printed = capsys.readouterr().out
    assert f"output folder: {out}" in printed and "| bicubic |" in printed
    results = json.loads((out / "quickstart_results.json").read_text())
    assert set(results) >= {"bicubic", "dan", "psnr_y_per_iteration", "kernel_error_per_iteration", "train_seconds"}
    assert len(results["psnr_y_per_iteration"]) == 4 == len(results["kernel_error_per_iteration"])
    assert results["psnr_y_per_iteration"][-1] == pytest.approx(results["dan"]["psnr_y"])
    manifest = json.loads((out / "testset_gaussian8_x4" / "manifest.json").read_text())
    pairs = manifest["pairs"]
    assert len(pairs) == 24 and manifest["protocol"] == "gaussian8" and manifest["scale"] == 4
    pictures = Path(results["pictures"])
    from basicsr.utils.matlab_functions import imresize as basicsr_imresize

    dan, bicubic = [], []
    for pair in pairs:
        stem = Path(pair["lr"]).stem
        gt = cv2.imread(str(out / "testset_gaussian8_x4" / pair["gt"]))
        lr = cv2.imread(str(out / "testset_gaussian8_x4" / pair["lr"]))
        sr = cv2.imread(str(pictures / f"{stem}_{quickstart.TEST_NAME}.png"))
        assert (pictures / f"{stem}_{quickstart.TEST_NAME}_kernel.png").is_file()
        dan.append(_psnr_y(sr, gt[: sr.shape[0], : sr.shape[1]], 4))
        up = basicsr_imresize(lr[..., ::-1].astype(np.float64) / 255.0, 4)  # BasicSR's own MATLAB bicubic
        up = np.round(np.clip(up, 0, 1) * 255).astype(np.uint8)[..., ::-1]
        bicubic.append(_psnr_y(up, gt[: up.shape[0], : up.shape[1]], 4))
    assert results["dan"]["psnr_y"] == pytest.approx(float(np.mean(dan)), abs=1e-3)
    assert results["bicubic"]["psnr_y"] == pytest.approx(float(np.mean(bicubic)), abs=2e-3)


def test_bad_arguments_are_reported(tmp_path, capsys) -> None:
    assert main(["quickstart", "--out", str(tmp_path), "--iters", "0"]) == 2  # a usage error
    assert "--iters" in capsys.readouterr().err
