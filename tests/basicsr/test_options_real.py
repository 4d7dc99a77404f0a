"""The real-image recipe: setting-1 blur plus AWGN on the LR; the CPU-sized file trains and validates here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import dan_blocks.basicsr  # noqa: F401  (makes basicsr importable, registers dan-blocks)
from dan_blocks.cli.main import main
from dan_blocks.degradations import build_degradation

OPTIONS = Path(__file__).resolve().parents[2] / "basicsr_options" / "real"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", ["train_DANv2_real_x4.yml", "quickstart_DANv2_real_x4.yml"])
def test_degradation_adds_noise_of_the_documented_range(name: str) -> None:
    opt = yaml.safe_load((OPTIONS / name).read_text())
    degradation = build_degradation(opt["degradation"])
    hr = torch.full((64, 3, 32, 32), 0.5, dtype=torch.float64)  # flat grey: what is left after blur is noise
    result = degradation.sample(hr, torch.Generator().manual_seed(0))
    levels = result["noise_level"]
    assert levels.shape == (64,) and float(levels.max()) <= 0.08 and float(levels.min()) == 0.0
    assert 0.05 < float((levels == 0).double().mean()) < 0.4  # about 20 % clean
    # each sample's spread matches its own level (per-sample noise), before quantisation to 1/255 steps
    lr = result["lr"]
    spread = (lr - 0.5).flatten(1).std(dim=1)
    noisy = levels > 0.02
    torch.testing.assert_close(spread[noisy], levels[noisy].to(spread), rtol=0.2, atol=2e-3)
    assert float(spread[levels == 0].max()) < 1e-6
    assert opt["network_g"]["type"] == "DANv2" and opt["network_g"]["setting"] == 1


def test_cpu_sized_real_image_file_trains_and_validates(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    overrides = ["train:total_iter=2", "val:val_freq=2", "logger:save_checkpoint_freq=2",
                 "datasets:train:gt_size=48", "datasets:train:batch_size_per_gpu=2", "datasets:val:max_size=48"]
    assert main(["train", "-opt", str(OPTIONS / "quickstart_DANv2_real_x4.yml"), "--force_yml", *overrides]) == 0
    exp = tmp_path / "experiments" / "quickstart_DANv2_real_x4"
    assert (exp / "models" / "net_g_2.pth").is_file()
    summary = json.loads((exp / "metrics_skimage-test-gaussian8_2.json").read_text())
    assert summary["images"] == 3 * 8 and len(summary["psnr_y_per_iteration"]) == 2
    for key in ("kernel_error_per_iteration", "kernel_error_aligned_per_iteration", "kernel_psnr_per_iteration"):
        assert len(summary[key]) == 2
    assert all(0 <= e <= 2 for e in summary["kernel_error_per_iteration"])
