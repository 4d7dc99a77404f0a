"""Issue 15, training: stale temporary files are removed, damaged states are named or skipped, a full disk keeps
the previous checkpoint, a release file is a valid ``pretrain_network_g``."""

from __future__ import annotations

import copy
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from test_cli_train_support import tiny_train_options, write_yaml

import dan_blocks  # noqa: F401  (registers everything)
from dan_blocks.basicsr import DANModel, compat
from dan_blocks.cli.main import main
from dan_blocks.formats import to_release_state_dict
from dan_blocks.utils import CheckpointReadError, load_file
from dan_blocks.utils.files import remove_stale_temp_files, stale_temp_files, temp_path

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run: models/net_g_{2,4}.pth, training_states/{2,4}.state (run in-process once)."""
    root = tmp_path_factory.mktemp("trained")
    yml = write_yaml(root / "run.yml", tiny_train_options("run", total_iter=4, save_freq=2))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["train", "-opt", yml]) == 0
    finally:
        os.chdir(cwd)
    return root


def _copy(trained: Path, tmp_path: Path) -> Path:
    shutil.copytree(trained / "experiments", tmp_path / "experiments")
    shutil.copy(trained / "run.yml", tmp_path / "run.yml")
    return tmp_path / "experiments" / "run"


def _state_iter(path: Path) -> int:
    compat._allow_resume_state_globals()  # BasicSR's states hold collections.Counter milestones
    return int(load_file(path)["iter"])


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _killed_during_save(target: Path) -> Path:
    """A real process killed with SIGKILL in the middle of an atomic save of ``target``; its temporary file."""
    script = textwrap.dedent(f"""
        import os, signal
        from dan_blocks.utils import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(b"half a checkpoint")
            print(tmp, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = Path(proc.stdout.strip())
    assert left.is_file() and left.parent == target.parent and left.name.startswith(f".{target.name}.tmp")
    return left


def test_stale_temp_files_are_only_those_of_dead_writers(tmp_path) -> None:
    dead = _killed_during_save(tmp_path / "net_g_6.pth")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = tmp_path / f".net_g_8.pth.tmp{sleeper.pid}"  # a save in progress in a living process
        alive.write_bytes(b"being written")
        own = Path(temp_path(tmp_path / "x.png", keep_extension=True))  # .x.tmp<our pid>.png
        own.write_bytes(b"ours")
        unrelated = tmp_path / ".notes.tmp"  # not a name atomic_path makes
        unrelated.write_bytes(b"keep")
        assert stale_temp_files(tmp_path) == [str(dead)]
        assert stale_temp_files(tmp_path, include_own=True) == sorted([str(dead), str(own)])
        assert remove_stale_temp_files(tmp_path) == [str(dead)]
        assert not dead.exists() and alive.exists() and own.exists() and unrelated.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert stale_temp_files(tmp_path / "missing") == []


def test_training_start_removes_temp_files_of_killed_saves_and_skips_a_truncated_state(trained, tmp_path) -> None:
    run = _copy(trained, tmp_path)
    left = [_killed_during_save(run / "models" / "net_g_6.pth"), _killed_during_save(run / "training_states" /
                                                                                       "6.state")]
    elsewhere = _killed_during_save(run / "notes.json")  # the experiment folder itself: not touched
    _truncate(run / "training_states" / "4.state")  # the newest state is damaged

    proc = subprocess.run(
        [sys.executable, "-m", "dan_blocks", "train", "-opt", "run.yml", "--auto_resume", "--force_yml",
         "train:total_iter=6"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"Resuming training from epoch: \d+, iter: 2\.", out), out[-3000:]
    assert "skipped a damaged training state" in out and "4.state" in out
    for path in left:
        assert not path.exists()
        assert path.name in out  # named in the log
    assert "Removed 1 temporary file(s) left in" in out
    assert elsewhere.exists()
    assert _state_iter(run / "training_states" / "6.state") == 6  # it trained on, from 2
    log = "".join(p.read_text() for p in run.glob("train_*.log"))
    assert "4.state" in log and left[0].name in log


# -- resume: damaged states and network files (compat.load_resume_state, as BasicSR's train_pipeline calls it) --


def _resume_opt(run: Path, auto: bool = True, resume_state: str | None = None) -> dict[str, Any]:
    return {"name": "run", "auto_resume": auto, "num_gpu": 0, "manual_seed": 0, "rank": 0,
            "network_g": {"type": "DANv2"},
            "path": {"models": str(run / "models"), "training_states": str(run / "training_states"),
                     "resume_state": resume_state, "pretrain_network_g": None}}


def test_auto_resume_falls_back_past_a_damaged_network_file(trained, tmp_path) -> None:
    run = _copy(trained, tmp_path)
    (run / "models" / "net_g_4.pth").write_bytes(b"")  # empty: a copy cut short
    opt = _resume_opt(run)
    state = compat.load_resume_state(opt)
    assert state["iter"] == 2
    assert opt["path"]["pretrain_network_g"] == str(run / "models" / "net_g_2.pth")
    notes = compat.resume_notes()
    assert len(notes) == 1 and "net_g_4.pth" in notes[0] and "empty" in notes[0] and "2.state" in notes[0]
    assert compat.resume_notes() == []


def test_no_intact_state_lists_every_damaged_file(trained, tmp_path) -> None:
    run = _copy(trained, tmp_path)
    _truncate(run / "training_states" / "4.state")
    (run / "training_states" / "2.state").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointReadError, match="no training state") as info:
        compat.load_resume_state(_resume_opt(run))
    assert "4.state" in str(info.value) and "2.state" in str(info.value)


def test_an_explicit_resume_state_that_is_damaged_stops_naming_it(trained, tmp_path, monkeypatch, capsys) -> None:
    run = _copy(trained, tmp_path)
    state = run / "training_states" / "4.state"
    _truncate(state)
    with pytest.raises(CheckpointReadError, match=r"path\.resume_state: cannot read checkpoint .*4\.state"):
        compat.load_resume_state(_resume_opt(run, auto=False, resume_state=str(state)))
    # through the command: exit 1, one line naming the file, not a bare unpickling error
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-opt", "run.yml", "--force_yml", f"path:resume_state={state}"]) == 1
    err = capsys.readouterr().err
    assert "CheckpointReadError" in err and str(state) in err and "damaged" in err
    assert "Traceback" not in err and "weights_only=False" not in err


# -- a full disk during a save -------------------------------------------------------------------------------


def _model_opt(tmp: Path) -> dict[str, Any]:
    opt = tiny_train_options("disk")
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    opt["path"] = {"models": str(tmp), "training_states": str(tmp), "log": str(tmp), "visualization": str(tmp),
                   "pretrain_network_g": None, "strict_load_g": True, "resume_state": None}
    return opt


def test_a_full_disk_names_the_file_and_keeps_the_previous_checkpoint(tmp_path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (a device whose writes fail with ENOSPC)")
    model = DANModel(_model_opt(tmp_path))
    model.save(0, -1)  # net_g_latest.pth
    latest = tmp_path / "net_g_latest.pth"
    before = latest.read_bytes()
    # the next save's temporary file is the full device: every write fails with ENOSPC, from the kernel
    os.symlink("/dev/full", temp_path(latest))
    with pytest.raises(OSError, match=r"no space left on the device while writing .*net_g_latest\.pth") as info:
        model.save(0, -1)
    assert info.value.errno == errno.ENOSPC
    assert latest.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["net_g_latest.pth"]  # the temporary file is gone


def test_a_full_disk_during_training_ends_the_command_with_the_file_named(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    yml = write_yaml(tmp_path / "o.yml", tiny_train_options("full", total_iter=4, save_freq=2))
    real_save = torch.save

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(f, str) and os.path.basename(f).startswith(".4.state"):  # full at the second state
            with open(f, "wb") as handle:
                handle.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    assert main(["train", "-opt", yml]) == 1
    err = capsys.readouterr().err
    assert "no space left on the device while writing" in err and "4.state" in err
    states = tmp_path / "experiments" / "full" / "training_states"
    assert sorted(os.listdir(states)) == ["2.state"]  # no partial file next to it
    monkeypatch.undo()
    assert _state_iter(states / "2.state") == 2


# -- a release-format file as pretrain_network_g ---------------------------------------------------------------


def test_a_release_file_loads_as_pretrain_network_g(tmp_path) -> None:
    opt = _model_opt(tmp_path)
    opt["network_g"]["residual"] = "double"  # the release's own network
    opt["network_g"]["pca"] = {"kernel_size": 21, "code_length": 10, "placeholder": True}
    torch.manual_seed(11)
    source = DANModel(copy.deepcopy(opt)).net_g  # BasicSR pops keys of the options it is given
    release = to_release_state_dict(source.state_dict())
    assert any(k.startswith("Restorer.") for k in release) and any(k.startswith("Estimator.") for k in release)
    torch.save(release, tmp_path / "danv2_release.pth")
    opt["path"]["pretrain_network_g"] = str(tmp_path / "danv2_release.pth")
    torch.manual_seed(12)  # different random weights: only loading makes them equal
    loaded = DANModel(opt).net_g
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
