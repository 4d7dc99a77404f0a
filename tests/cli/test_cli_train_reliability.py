"""``dan-blocks train`` reliability and console: the run's folder locked, empty epochs, NaN weights and losses,
``--force_yml`` values with '=', YAML merge keys, ``--threads``, a quiet console without negative ETA."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_cli_train_support import TINY_NET, tiny_train_options, write_yaml

import dan_blocks
import dan_blocks.basicsr  # makes basicsr importable, registers dan-blocks
from dan_blocks.archs import build_arch
from dan_blocks.cli._pipeline import ExperimentLockedError, apply_force_yml, experiment_lock
from dan_blocks.cli.main import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_second_run_with_the_same_name_is_refused_while_the_first_runs(tmp_path, monkeypatch, capsys) -> None:
    opt = tiny_train_options("shared", total_iter=100000, save_freq=100000)
    yml = write_yaml(tmp_path / "o.yml", opt)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "dan_blocks", "train", "--opt", yml, "--quiet"], cwd=tmp_path,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "experiments" / ".shared.lock"
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "experiments" / "shared" / "models").is_dir():  # the first run is training
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.2)
        assert lock.read_text().strip() == f"pid {first.pid}"
        monkeypatch.chdir(tmp_path)
        assert main(["train", "--opt", yml]) == 1
        err = capsys.readouterr().err
        assert "is in use by a run that is still going" in err and f"pid {first.pid}" in err
        # the first run's folder is not archived
        assert sorted(p.name for p in (tmp_path / "experiments").iterdir()) == [".shared.lock", "shared"]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        if first.stderr:
            first.stderr.close()
    with experiment_lock(str(tmp_path / "experiments" / "shared")) as path:  # a killed run leaves no stale lock
        assert path == str(lock)


def test_experiment_lock_excludes_a_second_holder(tmp_path) -> None:
    folder = str(tmp_path / "experiments" / "x")
    code = ("import sys, time\nfrom dan_blocks.cli._pipeline import experiment_lock\n"
            f"with experiment_lock({folder!r}):\n    print('locked', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(ExperimentLockedError, match=f"pid {holder.pid}"), experiment_lock(folder):
            pass
    finally:
        holder.kill()
        holder.wait(30)
        if holder.stdout:
            holder.stdout.close()
    with experiment_lock(folder):
        pass


def test_batch_larger_than_the_dataset_is_an_error_before_any_work(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "hr"
    data.mkdir()
    import cv2
    import numpy as np

    for index in range(3):
        cv2.imwrite(str(data / f"{index}.png"), np.full((40, 40, 3), 40 * index, np.uint8))
    opt = tiny_train_options("empty_epoch", train_root=str(data))
    opt["datasets"]["train"]["batch_size_per_gpu"] = 4  # 3 images x enlarge 1: no batch of 4 in an epoch
    assert main(["train", "--opt", write_yaml(tmp_path / "o.yml", opt)]) == 1
    err = capsys.readouterr().err
    assert "batch_size_per_gpu 4" in err and "3 image(s)" in err and "0 iterations" in err
    assert not (tmp_path / "experiments").exists()
    opt["datasets"]["train"]["dataset_enlarge_ratio"] = 2  # 6 samples: one batch of 4 per epoch
    opt["train"]["total_iter"] = 1
    assert main(["train", "--opt", write_yaml(tmp_path / "o.yml", opt)]) == 0


def test_nan_pretrained_weights_are_refused_before_any_work(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    state = build_arch(dict(TINY_NET)).state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].clone().fill_(float("nan"))
    torch.save({"params": state}, tmp_path / "nan.pth")
    opt = tiny_train_options("nan_start")
    opt["path"]["pretrain_network_g"] = str(tmp_path / "nan.pth")
    assert main(["train", "--opt", write_yaml(tmp_path / "o.yml", opt)]) == 1
    err = capsys.readouterr().err
    assert "nan.pth" in err and name in err and "NaN or infinite" in err
    assert not (tmp_path / "experiments").exists()


def test_a_diverging_training_stops_naming_the_iteration_and_saves_nothing(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    opt = tiny_train_options("diverge", total_iter=30, save_freq=1000, enlarge=8)
    opt["train"]["optim_g"]["lr"] = 1.0e30  # Adam moves every weight by ~lr: the next forward overflows
    assert main(["train", "--opt", write_yaml(tmp_path / "o.yml", opt)]) == 1
    err = capsys.readouterr().err
    match = re.search(r"training diverged at iteration (\d+): the loss is not finite", err)
    assert match and 1 < int(match.group(1)) <= 30, err
    assert list((tmp_path / "experiments" / "diverge" / "models").iterdir()) == []  # no garbage result


def test_force_yml_value_with_equals_splits_on_the_first(tmp_path, monkeypatch) -> None:
    assert apply_force_yml({"a": {"b": 1}}, ["a:b=x=y", "c=none", "d=[1, 2]"]) == {
        "a": {"b": "x=y"}, "c": None, "d": [1, 2]}
    monkeypatch.chdir(tmp_path)
    yml = write_yaml(tmp_path / "o.yml", tiny_train_options("orig", total_iter=2))
    assert main(["train", "--opt", yml, "--force_yml", "name=run=2", "train:total_iter=1"]) == 0
    assert (tmp_path / "experiments" / "run=2" / "models" / "net_g_latest.pth").is_file()


def test_yaml_merge_keys_are_supported(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    opt = tiny_train_options("merged", total_iter=1)
    text = yaml.safe_dump(opt, sort_keys=False)
    kernel_block = "  kernel_opt:\n    type: L1Loss\n    loss_weight: 1.0\n    reduction: mean\n"
    pixel_block = "  pixel_opt:\n    type: L1Loss\n    loss_weight: 1.0\n    reduction: mean\n"
    assert kernel_block in text and pixel_block in text
    text = text.replace(pixel_block, "").replace(
        kernel_block, "  kernel_opt: &l1\n    type: L1Loss\n    loss_weight: 1.0\n    reduction: mean\n"
                      "  pixel_opt:\n    <<: *l1\n    loss_weight: 0.5\n")
    (tmp_path / "m.yml").write_text(text)
    assert main(["train", "--opt", str(tmp_path / "m.yml")]) == 0
    copied = yaml.safe_load((tmp_path / "experiments" / "merged" / "m.yml").read_text())  # the options as run
    assert copied["train"]["pixel_opt"] == {"type": "L1Loss", "loss_weight": 0.5, "reduction": "mean"}


def test_default_console_is_a_handful_of_lines_without_negative_eta(tmp_path, monkeypatch, capfd) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    opt = tiny_train_options("console", total_iter=20, save_freq=1000, enlarge=8)
    yml = write_yaml(tmp_path / "o.yml", opt)
    torch.set_num_threads(3)
    assert main(["train", "--opt", yml]) == 0
    assert torch.get_num_threads() == 1  # the default obeys OMP_NUM_THREADS
    out, err = capfd.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip() and "UserWarning" not in line
             and "check_worker_number_rationality" not in line]
    assert len(lines) <= 10, "\n".join(lines)
    assert any("iter:      20" in line for line in lines) and "the full log is" in lines[-1]
    log = next((tmp_path / "experiments" / "console").glob("train_console_*.log")).read_text()
    etas = re.findall(r"\[eta: ([^,]+),", log)
    assert len(etas) == 20 and etas[-1] == "0:00:00" and not any(eta.startswith("-") for eta in etas)
    assert "Network: DANv2" in log or "network_g" in log  # the log file keeps BasicSR's full output

    assert main(["train", "--opt", yml, "--force_yml", "name=console_v", "--verbose", "--threads", "2"]) == 0
    assert torch.get_num_threads() == 2
    out, err = capfd.readouterr()
    assert len((out + err).splitlines()) > 60  # BasicSR's own console: banner, options, network, 20 lines
    assert main(["train", "--opt", yml, "--force_yml", "name=console_q", "--quiet"]) == 0
    out, err = capfd.readouterr()
    assert "iter:" not in out + err


def test_opt_spellings_and_usage_errors(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    yml = write_yaml(tmp_path / "o.yml", tiny_train_options("spell", total_iter=1))
    assert main(["train", f"--opt={yml}", "--quiet"]) == 0
    assert main(["train", "-opt", yml, "--force_yml", "name=spell2", "--quiet"]) == 0
    assert main(["train", "--opt", yml, "--threads", "0"]) == 2
    assert "--threads must be a positive integer" in capsys.readouterr().err
    assert main(["train", "--opt", yml, "--quiet", "--verbose"]) == 2
    assert main(["train", "--help"]) == 0
    assert "examples:" in capsys.readouterr().out
    assert Path(tmp_path / "experiments" / "spell2").is_dir()


def _three_images(folder: Path) -> str:
    import cv2
    import numpy as np

    folder.mkdir()
    for index in range(3):
        cv2.imwrite(str(folder / f"{index}.png"), np.full((40, 40, 3), 40 * index, np.uint8))
    return str(folder)


def test_every_requested_iteration_runs_when_the_last_batch_is_dropped(tmp_path, monkeypatch) -> None:
    # 3 images, batch 2: the loader drops the odd one, so an epoch holds 1 batch (BasicSR counted 2 and stopped
    # after total_epochs + 1 = 4 iterations of the 6 asked, saving that as the result with exit 0)
    monkeypatch.chdir(tmp_path)
    opt = tiny_train_options("dropped", total_iter=6, save_freq=6, train_root=_three_images(tmp_path / "hr"))
    assert main(["train", "--opt", write_yaml(tmp_path / "o.yml", opt)]) == 0
    run = tmp_path / "experiments" / "dropped"
    assert (run / "models" / "net_g_6.pth").is_file() and (run / "training_states" / "6.state").is_file()


def test_a_pretrained_file_of_a_newer_format_is_refused_naming_its_version(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    net = build_arch(dict(TINY_NET))
    dan_blocks.save_model(net, tmp_path / "new.pth", network_g=dict(TINY_NET))
    saved = torch.load(tmp_path / "new.pth", weights_only=True)
    saved["dan_blocks"]["format"] = "dan_blocks.model/7"
    torch.save(saved, tmp_path / "new.pth")
    opt = tiny_train_options("future")
    opt["path"]["pretrain_network_g"] = str(tmp_path / "new.pth")
    assert main(["train", "--opt", write_yaml(tmp_path / "o.yml", opt)]) == 1
    err = capsys.readouterr().err
    assert "new.pth" in err and "format version 7" in err
    assert not (tmp_path / "experiments").exists()


def test_a_test_without_a_val_block_is_refused_before_any_work(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    dan_blocks.save_model(build_arch(dict(TINY_NET)), tmp_path / "w.pth", network_g=dict(TINY_NET))
    opt = tiny_train_options("no_val")  # a training file given to test: BasicSR failed with "KeyError: 'val'"
    opt["path"]["pretrain_network_g"] = str(tmp_path / "w.pth")
    assert main(["test", "--opt", write_yaml(tmp_path / "o.yml", opt)]) == 1
    err = capsys.readouterr().err
    assert "'val:' block" in err and "save_img" in err
    assert not (tmp_path / "results").exists()
