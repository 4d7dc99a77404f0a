"""The one helper per shared job: registries, atomic writes, option-key checking, checkpoint reading, CLI errors."""

from __future__ import annotations

import errno
import os
import pickle
import random

import pytest
import torch

from dan_blocks.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError, run_command
from dan_blocks.utils import (
    CheckpointReadError,
    OptionKeyError,
    Registry,
    atomic_path,
    atomic_save,
    atomic_write_text,
    check_keys,
    read_checkpoint,
)
from dan_blocks.utils.files import temp_path


# -- Registry -------------------------------------------------------------------------------------------
def test_registry_is_idempotent_and_refuses_a_second_object_under_a_name() -> None:
    reg = Registry("thing")

    class A:
        pass

    class B:
        pass

    assert reg.register(A) is A and reg.register(A) is A
    assert "A" in reg and reg.get("A") is A and reg.keys() == ["A"]
    with pytest.raises(ValueError, match=r"'A' is already taken"):
        reg.register(B, name="A")
    with pytest.raises(KeyError, match=r"did you mean 'A'"):
        reg.get("a")


def test_registry_listeners_see_past_and_future_entries() -> None:
    reg = Registry("thing")
    seen: list[str] = []
    reg.register(int, name="one")
    reg.add_listener(lambda name, obj: seen.append(name))
    reg.register(float, name="two")
    reg.register(float, name="two")  # a repeat is not announced again
    assert seen == ["one", "two"]


# -- atomic writes --------------------------------------------------------------------------------------
def test_atomic_path_replaces_the_target_only_on_success(tmp_path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        with open(tmp, "w") as handle:
            handle.write("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]  # no temporary file left
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["out.txt"]


def test_atomic_temp_file_sits_next_to_the_target_with_its_extension(tmp_path) -> None:
    tmp = temp_path(tmp_path / "image.png", keep_extension=True)
    assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".png")
    assert os.path.basename(tmp).startswith(".image.tmp")
    plain = temp_path(tmp_path / "100.state")  # invisible to scans for *.state
    assert os.path.dirname(plain) == str(tmp_path) and not plain.endswith(".state")
    assert os.path.basename(plain).startswith(".100.state.tmp")


def test_atomic_save_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch) -> None:
    target = tmp_path / "net.pth"
    atomic_save({"w": torch.ones(2)}, target)

    def no_space(obj, path):  # torch.save on a full disk
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(OSError, match=r"no space left on the device while writing .*net\.pth") as info:
        atomic_save({"w": torch.zeros(2)}, target)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.ones(2))
    assert os.listdir(tmp_path) == ["net.pth"]


def test_atomic_path_rejects_a_folder_target_and_a_missing_folder(tmp_path) -> None:
    with pytest.raises(IsADirectoryError, match="is a directory"), atomic_path(tmp_path):
        pass
    with pytest.raises(FileNotFoundError, match="does not exist"), atomic_path(tmp_path / "no" / "x.txt"):
        pass
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is a file, not a folder"), atomic_path(tmp_path / "file" / "x.txt"):
        pass


# -- option keys ----------------------------------------------------------------------------------------
def test_check_keys_names_the_key_the_accepted_ones_and_a_close_match() -> None:
    with pytest.raises(OptionKeyError) as info:
        check_keys({"pretrain_netwrk_g": "x.pth", "strict_load_g": True}, ["pretrain_network_g", "strict_load_g"],
                   "path")
    message = str(info.value)
    assert "'pretrain_netwrk_g'" in message and "did you mean 'pretrain_network_g'" in message
    assert "accepted keys: pretrain_network_g, strict_load_g" in message and "in path" in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, KeyError)
    check_keys({"strict_load_g": True}, ["strict_load_g"], "path")  # accepted keys pass
    check_keys(None, ["a"], "path")
    with pytest.raises(OptionKeyError, match="must be a mapping"):
        check_keys(["a"], ["a"], "path")  # type: ignore[arg-type]


# -- checkpoint reading ---------------------------------------------------------------------------------
def test_read_checkpoint_unwraps_params_and_module_prefix(tmp_path) -> None:
    path = tmp_path / "net_g.pth"
    torch.save({"params": {"module.conv.weight": torch.ones(1)}, "iter": 5}, path)
    state = read_checkpoint(path)
    assert list(state) == ["conv.weight"] and torch.equal(state["conv.weight"], torch.ones(1))
    torch.save({"params": {"a": torch.zeros(1)}, "params_ema": {"a": torch.ones(1)}}, path)
    assert torch.equal(read_checkpoint(path, "params_ema")["a"], torch.ones(1))


class _Evil:
    def __reduce__(self):  # would run code when unpickled without weights_only
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "is empty"),
        (b"\x01" + random.Random(0).randbytes(255), "not a PyTorch checkpoint or it is damaged"),
        (pickle.dumps({"x": _Evil()}), "a plain Python pickle, not a torch.save file"),
        (pickle.dumps({"x": _Evil()}, protocol=2), "a plain Python pickle|Python objects other than tensors"),
    ],
)
def test_read_checkpoint_bad_files_name_the_file_and_cause(tmp_path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointReadError, match=match) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value) and "weights_only=False" not in str(info.value)


def test_read_checkpoint_unsafe_torch_pickle_is_refused(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"params": {"a": torch.ones(1)}, "hook": _Evil()}, path)
    with pytest.raises(CheckpointReadError, match="Python objects other than tensors") as info:
        read_checkpoint(path)
    assert "weights_only=False" not in str(info.value)


def test_read_checkpoint_missing_folder_and_no_tensors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "none.pth")
    with pytest.raises(CheckpointReadError, match="is a folder"):
        read_checkpoint(tmp_path)
    torch.save({"epoch": 3}, tmp_path / "state.pth")
    with pytest.raises(CheckpointReadError, match="entry 'epoch' is of type int, expected a tensor"):
        read_checkpoint(tmp_path / "state.pth")
    torch.save({}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointReadError, match="holds no tensors"):
        read_checkpoint(tmp_path / "empty.pth")


# -- CLI errors -----------------------------------------------------------------------------------------
def test_run_command_exit_codes(capsys) -> None:
    assert run_command("x", lambda: 0) == EXIT_OK

    def usage() -> int:
        raise UsageError("--tile must be >= 1")

    def failed() -> int:
        raise FileNotFoundError("photo.png not found")

    def argparse_error() -> int:
        raise SystemExit(2)

    def interrupted() -> int:
        raise KeyboardInterrupt

    assert run_command("sr", usage) == EXIT_USAGE
    assert "dan-blocks sr: usage error: --tile must be >= 1" in capsys.readouterr().err
    assert run_command("sr", failed) == EXIT_FAILED
    assert "dan-blocks sr: error: FileNotFoundError: photo.png not found" in capsys.readouterr().err
    assert run_command("sr", argparse_error) == EXIT_USAGE
    assert run_command("sr", interrupted) == EXIT_INTERRUPTED
