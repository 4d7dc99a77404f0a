"""The MANet option files: DAN composed from a RestorerV2 + MANetEstimator dict, trained and validated on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import dan_blocks
import dan_blocks.basicsr  # noqa: F401  (makes basicsr importable, registers dan-blocks)
from dan_blocks.cli.main import main

OPTIONS = Path(__file__).resolve().parents[2] / "basicsr_options" / "manet"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _load(path: Path) -> dict:
    from basicsr.utils.options import ordered_yaml

    with open(path) as handle:
        return yaml.load(handle, Loader=ordered_yaml()[0])


@pytest.mark.parametrize("name", ["train_DANv2_MANet_setting2_x4.yml", "quickstart_DANv2_MANet_x2.yml"])
def test_network_builds_with_per_pixel_codes(name: str) -> None:
    from basicsr.archs import build_network

    opt = _load(OPTIONS / name)
    net = build_network(dict(opt["network_g"])).eval()
    assert type(net.estimator).__name__ == "MANetEstimator"
    scale, size = opt["scale"], 12
    with torch.no_grad():
        out = net(torch.rand(1, 3, size, size))
    assert out.sr.shape == (1, 3, size * scale, size * scale)
    assert out.codes[-1].shape == (1, net.code_length, size, size)  # one code per LR pixel
    k2 = net.kernel_size**2
    assert out.kernels[-1].shape == (1, k2, size, size)
    torch.testing.assert_close(out.kernels[-1].sum(dim=1), torch.ones(1, size, size))


def test_quickstart_sized_manet_file_trains_and_validates_on_cpu(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    overrides = ["train:total_iter=2", "val:val_freq=2", "logger:save_checkpoint_freq=2",
                 "datasets:train:gt_size=32", "datasets:train:batch_size_per_gpu=2", "datasets:val:max_size=32"]
    assert main(["train", "-opt", str(OPTIONS / "quickstart_DANv2_MANet_x2.yml"), "--force_yml", *overrides]) == 0
    exp = tmp_path / "experiments" / "quickstart_DANv2_MANet_x2"
    assert (exp / "models" / "net_g_2.pth").is_file()
    summary = json.loads((exp / "metrics_skimage-test-aniso_2.json").read_text())
    assert summary["images"] == 3 and len(summary["psnr_y_per_iteration"]) == 2
    assert len(summary["kernel_error_per_iteration"]) == 2
    assert all(0 <= e <= 2 for e in summary["kernel_error_per_iteration"])
