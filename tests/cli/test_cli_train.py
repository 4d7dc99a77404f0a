"""``dan-blocks train`` / ``dan-blocks test`` run BasicSR's own pipelines; bad input gives clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_cli_train_support import tiny_test_options, tiny_testset, tiny_train_options, write_yaml

import dan_blocks.basicsr  # noqa: F401  (makes basicsr importable, registers dan-blocks)
from dan_blocks.cli.main import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _y(img_bgr: np.ndarray) -> np.ndarray:
    img = img_bgr.astype(np.float64)
    return 16.0 + (65.481 * img[..., 2] + 128.553 * img[..., 1] + 24.966 * img[..., 0]) / 255.0


@pytest.fixture(scope="module")
def testset(tmp_path_factory) -> str:
    return tiny_testset(tmp_path_factory.mktemp("testset"))


def test_train_then_test_through_basicsr_pipelines(tmp_path, monkeypatch, testset) -> None:
    monkeypatch.chdir(tmp_path)
    opt = tiny_train_options("cli_run", total_iter=6, save_freq=2, val_root=testset)
    opt["logger"]["use_tb_logger"] = True
    yml = write_yaml(tmp_path / "train.yml", opt)
    assert main(["train", "-opt", yml, "--force_yml", "train:total_iter=4"]) == 0
    exp = tmp_path / "experiments" / "cli_run"
    assert sorted(p.name for p in (exp / "models").iterdir()) == [
        "net_g_2.pth", "net_g_4.pth", "net_g_latest.pth"]  # --force_yml cut the run to 4 iterations
    assert sorted(p.name for p in (exp / "training_states").iterdir()) == ["2.state", "4.state"]
    weights = torch.load(exp / "models" / "net_g_4.pth", weights_only=True)
    assert set(weights) == {"params", "params_ema", "dan_blocks"}
    assert weights["dan_blocks"]["network_g"]["type"] == "DANv2"  # self-describing: the options rebuild it
    summary = json.loads((exp / "metrics_tinyval_4.json").read_text())
    assert summary["images"] == 8 and len(summary["psnr_y_per_iteration"]) == 2
    assert len(summary["kernel_error_per_iteration"]) == 2
    assert (exp / "visualization" / "img_sig0.80" / "img_sig0.80_4_kernel.png").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb_logger" / "cli_run"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "metrics/tinyval/psnr_y_iter2" in tags and "metrics/tinyval/kernel_error_iter1" in tags
    assert "losses/l_ker" in tags and "metrics/tinyval/psnr" in tags

    test_yml = write_yaml(tmp_path / "test.yml", tiny_test_options("cli_test", str(exp / "models" / "net_g_4.pth"),
                                                                   testset))
    assert main(["test", "-opt", test_yml]) == 0
    results = tmp_path / "results" / "cli_test"
    summary = json.loads((results / "metrics_tinytest_cli_test.json").read_text())
    # independent check: Y-PSNR (crop 2) of the written SR images against the test set's HR file
    gt = cv2.imread(str(Path(testset) / "gt" / "img.png"))
    psnrs = []
    for record in summary["per_image"]:
        sr = cv2.imread(str(results / "visualization" / "tinytest" / f"{record['name']}_cli_test.png"))
        assert (results / "visualization" / "tinytest" / f"{record['name']}_cli_test_kernel.png").is_file()
        mse = np.mean((_y(sr)[2:-2, 2:-2] - _y(gt)[2:-2, 2:-2]) ** 2)
        psnrs.append(10 * np.log10(255.0**2 / mse))
    assert summary["psnr"] == pytest.approx(float(np.mean(psnrs)), abs=1e-4)  # BasicSR: float32 Y


def test_unreadable_training_image_is_named(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "hr"
    data.mkdir()
    cv2.imwrite(str(data / "good.png"), np.zeros((40, 40, 3), np.uint8))
    (data / "broken.png").write_bytes(b"this is not a png")
    opt = tiny_train_options("bad_image", total_iter=2, train_root=str(data))
    opt["datasets"]["train"]["batch_size_per_gpu"] = 1
    opt["datasets"]["train"]["dataset_enlarge_ratio"] = 2
    assert main(["train", "-opt", write_yaml(tmp_path / "o.yml", opt)]) == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "Traceback" not in err


def test_misspelled_option_key_is_named_with_accepted_keys(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    opt = tiny_train_options("bad_key", total_iter=2)
    opt["train"]["kernel_otp"] = opt["train"].pop("kernel_opt")
    assert main(["train", "-opt", write_yaml(tmp_path / "o.yml", opt)]) == 1
    err = capsys.readouterr().err
    assert "'kernel_otp' (did you mean 'kernel_opt'?)" in err and "accepted keys:" in err and "lr_E" in err
    opt = tiny_train_options("bad_deg_key", total_iter=2)
    opt["degradation"]["sigma_rnage"] = "release"
    assert main(["train", "-opt", write_yaml(tmp_path / "o.yml", opt)]) == 1
    err = capsys.readouterr().err
    assert "sigma_rnage" in err and "sigma_range" in err


def test_misspelled_path_key_stops_before_basicsr_makes_a_directory(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    opt = tiny_train_options("bad_path_key", total_iter=2)
    opt["path"]["pretrain_netwrk_g"] = "x.pth"  # BasicSR alone would mkdir "x.pth" and train from scratch
    assert main(["train", "-opt", write_yaml(tmp_path / "o.yml", opt)]) == 1
    err = capsys.readouterr().err
    assert "'pretrain_netwrk_g' (did you mean 'pretrain_network_g'?)" in err and "accepted keys:" in err
    assert not (tmp_path / "x.pth").exists() and not (tmp_path / "experiments").exists()


def test_lr_smaller_than_the_network_needs_is_a_clear_error(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    tiny = tmp_path / "tiny"  # a make-testset style folder with a 2x2 LR image
    (tiny / "gt").mkdir(parents=True)
    (tiny / "lr_x2").mkdir()
    cv2.imwrite(str(tiny / "gt" / "a.png"), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(tiny / "lr_x2" / "a.png"), np.zeros((2, 2, 3), np.uint8))
    (tiny / "manifest.json").write_text(json.dumps(
        {"format": "dan_blocks.testset/1", "scale": 2, "pairs": [{"lr": "lr_x2/a.png", "gt": "gt/a.png"}]}))
    weights = tmp_path / "w.pth"
    from basicsr.archs import build_network
    from test_cli_train_support import TINY_NET

    torch.save({"params": build_network(dict(TINY_NET)).state_dict()}, weights)
    test_yml = write_yaml(tmp_path / "t.yml", tiny_test_options("too_small", str(weights), str(tiny)))
    assert main(["test", "-opt", test_yml]) == 1
    err = capsys.readouterr().err
    assert "2x2 is smaller than DANModel needs" in err
    opt = tiny_train_options("small_patch", total_iter=2)
    opt["datasets"]["train"]["gt_size"] = 6
    assert main(["train", "-opt", write_yaml(tmp_path / "o.yml", opt)]) == 1
    assert "training HR patch 6x6" in capsys.readouterr().err


def test_missing_option_file_and_help(tmp_path, capsys) -> None:
    assert main(["train", "-opt", str(tmp_path / "nope.yml")]) == 1
    assert "nope.yml" in capsys.readouterr().err
    assert main(["train", "--help"]) == 0
    assert "--auto_resume" in capsys.readouterr().out
