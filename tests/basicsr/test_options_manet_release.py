"""The option files for MANet's released models: MANet stage 3 tested as released through BasicSR's
test_pipeline, and "DANv2 restorer + MANet estimator" trained from MANet's released estimator (a MANet-layout
stage-1 file), both run on CPU with generated weights in MANet's own layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _helpers import randomise

import dan_blocks.basicsr  # noqa: F401  (makes basicsr importable, registers dan-blocks)
from dan_blocks import load_model
from dan_blocks.archs import MANetEstimator, MANetRRDB
from dan_blocks.cli.main import main
from dan_blocks.formats import from_manet_state_dict, to_manet_state_dict

OPTIONS = Path(__file__).resolve().parents[2] / "basicsr_options" / "manet"
pytestmark = pytest.mark.usefixtures("one_torch_thread")



def test_stage3_test_file_runs_the_released_layout(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    model = randomise(MANetRRDB(), 0)  # the file's (released) sizes
    weights = tmp_path / "experiments" / "pretrained_models" / "stage3_MANet+RRDB_x4.pth"
    weights.parent.mkdir(parents=True)
    torch.save(to_manet_state_dict(model.state_dict()), weights)  # MANet's layout, as downloaded
    overrides = ["datasets:test_1:dataroot=builtin:skimage-test", "datasets:test_1:protocol=aniso",
                 "datasets:test_1:kernel_size=21", "datasets:test_1:max_size=48", "num_gpu=0"]
    assert main(["test", "-opt", str(OPTIONS / "test_MANet_RRDB_x4.yml"), "--force_yml", *overrides]) == 0
    summary = json.loads(next((tmp_path / "results" / "MANet_RRDB_x4").glob("metrics_*.json")).read_text())
    assert summary["images"] == 3
    assert len(summary["psnr_y_per_iteration"]) == 1  # one estimate -> restore step
    assert all(0 <= e <= 2 for e in summary["kernel_error_per_iteration"])
    # the pipeline's network is the file's: same SR as load_model on MANet's file
    loaded = load_model(weights)
    torch.testing.assert_close(loaded.restorer.conv_first.weight, model.restorer.conv_first.weight)


def test_train_file_starts_from_manets_released_estimator(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    estimator = randomise(MANetEstimator(nf=8, num_blocks=1, kernel_size=21, use_sr=False, pad_multiple=8), 1)
    stage1 = to_manet_state_dict(estimator.state_dict())
    weights = tmp_path / "experiments" / "pretrained_models" / "stage1_MANet_x4.pth"
    weights.parent.mkdir(parents=True)
    torch.save(stage1, weights)
    overrides = [
        "num_gpu=0", "network_g:restorer:nf=8", "network_g:restorer:nb=1", "network_g:restorer:ng=1",
        "network_g:estimator:nf=8", "train:total_iter=2", "val:val_freq=2", "logger:save_checkpoint_freq=2",
        "logger:use_tb_logger=False", "datasets:train:dataroot_gt=builtin:skimage-train",
        "datasets:train:gt_size=64", "datasets:train:batch_size_per_gpu=2", "datasets:train:num_worker_per_gpu=0",
        "datasets:train:dataset_enlarge_ratio=1", "datasets:val:dataroot=builtin:skimage-test",
        "datasets:val:protocol=aniso", "datasets:val:kernel_size=21", "datasets:val:max_size=48",
    ]
    assert main(["train", "-opt", str(OPTIONS / "train_DANv2_MANetPretrained_x4.yml"), "--force_yml",
                 *overrides]) == 0
    trained = torch.load(tmp_path / "experiments" / "DANv2_MANetPretrained_x4" / "models" / "net_g_2.pth",
                         weights_only=True)["params"]
    released = from_manet_state_dict(stage1)  # the MANet-layout tensors, in dan-blocks' names
    for key, value in released.items():  # frozen (lr_E: 0): exactly MANet's weights after training
        torch.testing.assert_close(trained["estimator." + key], value, rtol=0, atol=0)
    assert len(released) == sum(k.startswith("estimator.") for k in trained)


def test_estimator_pretrain_errors_name_the_file(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    wrong = MANetEstimator(nf=16, num_blocks=1, kernel_size=21, use_sr=False, pad_multiple=8)  # other width
    weights = tmp_path / "stage1.pth"
    torch.save(to_manet_state_dict(wrong.state_dict()), weights)
    overrides = ["num_gpu=0", "network_g:restorer:nf=8", "network_g:restorer:nb=1", "network_g:restorer:ng=1",
                 "network_g:estimator:nf=8", f"path:pretrain_network_estimator={weights}",
                 "datasets:train:dataroot_gt=builtin:skimage-train", "datasets:val:dataroot=builtin:skimage-test",
                 "datasets:val:protocol=aniso", "datasets:train:num_worker_per_gpu=0"]
    code = main(["train", "-opt", str(OPTIONS / "train_DANv2_MANetPretrained_x4.yml"), "--force_yml", *overrides])
    assert code == 1  # a bad file: the work failed (docs/cli.md exit codes)
    err = capsys.readouterr().err
    assert f"path.pretrain_network_estimator {weights}" in err and "shape differences" in err
    assert "Traceback" not in err
