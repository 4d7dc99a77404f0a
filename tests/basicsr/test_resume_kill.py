"""A run killed with SIGKILL resumes with --auto_resume and ends with the weights of an uninterrupted run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from test_cli_train_support import tiny_train_options, write_yaml

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _train(cwd: Path, yml: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dan_blocks", "train", "-opt", yml, *extra], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen[str]) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    return out


def _states(run: Path) -> list[int]:
    folder = run / "training_states"
    if not folder.is_dir():
        return []
    return sorted(int(p.name.split(".")[0]) for p in folder.iterdir() if p.name.endswith(".state"))


def test_sigkill_then_auto_resume_matches_an_uninterrupted_run(tmp_path) -> None:
    # 5 photos x enlarge 4 = 20 patches, batch 2: 10 iterations per epoch, so the kill lands mid-epoch
    opt = tiny_train_options("killed", total_iter=100_000, save_freq=2, enlarge=4, seed=7)
    killed_yml = write_yaml(tmp_path / "killed.yml", opt)
    opt["name"] = "straight"
    straight_yml = write_yaml(tmp_path / "straight.yml", opt)
    run = tmp_path / "experiments" / "killed"

    proc = _train(tmp_path, killed_yml)
    deadline = time.monotonic() + 240
    while not _states(run) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.3)  # let it run on past the checkpoint: that work is lost and must be redone
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, out[-3000:]
    saved = _states(run)
    assert saved, out[-3000:]
    last = saved[-1]
    target = last + 5  # odd: the comparison point is not a checkpoint of the killed run

    resumed = _finish(_train(tmp_path, killed_yml, "--auto_resume", "--force_yml", f"train:total_iter={target}"))
    assert re.search(rf"Resuming training from epoch: \d+, iter: {last}\.", resumed), resumed[-3000:]
    _finish(_train(tmp_path, straight_yml, "--force_yml", f"train:total_iter={target}"))

    a = torch.load(run / "models" / "net_g_latest.pth", weights_only=True)
    b = torch.load(tmp_path / "experiments" / "straight" / "models" / "net_g_latest.pth", weights_only=True)
    start = torch.load(run / "models" / f"net_g_{last}.pth", weights_only=True)
    assert set(a) == set(b) == {"params", "params_ema", "dan_blocks"}
    for key in ("params", "params_ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs after resuming"
    assert any(not torch.equal(a["params"][n], start["params"][n]) for n in a["params"])  # it did train on
