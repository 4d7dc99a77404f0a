"""B21-B25: `convert` writes files that rebuild the very model it read, never replaces its input or an existing
file silently; `options -o` checks its path like the other commands; write errors name the target file."""

from __future__ import annotations

import errno
import os
import pathlib

import pytest
import torch
import yaml

import dan_blocks
from dan_blocks.archs import DANv1, DANv2, arch_options
from dan_blocks.cli.main import main
from dan_blocks.formats import save_model, to_release_state_dict
from dan_blocks.utils import atomic_path, atomic_save, atomic_write_text

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"scale": 2, "nf": 8, "nb": 1, "est_nf": 8, "est_nb": 1, "loop": 2}
QUICKSTART = "quickstart_DANv2_real_x4.yml"


def _outputs(model: torch.nn.Module, lr: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model.eval()(lr)
    return [*out.srs, *out.codes]


def _assert_same_model(written: pathlib.Path, original: torch.nn.Module) -> None:
    rebuilt = dan_blocks.load_model(written)
    assert type(rebuilt) is type(original)
    lr = torch.rand(1, 3, 6, 5, generator=torch.Generator().manual_seed(3))
    for a, b in zip(_outputs(rebuilt, lr), _outputs(original, lr), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    "build",
    [
        lambda: DANv1(**TINY, reduction=4),  # the default reduction (16) does not fit nf=8
        lambda: DANv2(**TINY, ng=1, est_tail_nf=8, residual="add", est_input_norm=True),
    ],
    ids=["DANv1-reduction4", "DANv2-add-norm"],
)
def test_convert_writes_options_that_rebuild_the_same_model(build, tmp_path, capsys) -> None:
    torch.manual_seed(0)
    original = build().eval()
    src, dst = tmp_path / "a.pth", tmp_path / "b.pth"
    save_model(original, src)
    assert main(["convert", str(src), str(dst)]) == 0
    printed = capsys.readouterr().out
    written = torch.load(dst, weights_only=True)
    assert written["dan_blocks"]["network_g"] == arch_options(original)  # every constructor argument
    assert yaml.safe_load(printed[printed.index("network_g:"):])["network_g"] == arch_options(original)
    rebuilt = dan_blocks.load_model(dst)
    assert arch_options(rebuilt) == arch_options(original)
    _assert_same_model(dst, original)


def test_convert_of_a_release_layout_file_rebuilds_it(tmp_path, capsys) -> None:
    torch.manual_seed(1)
    model = dan_blocks.dan_v2(2, pca=dan_blocks.default_pca(21, 10).matrix.clone(), nf=8, nb=1, ng=1, est_nf=8,
                              est_nb=1, est_tail_nf=8)
    release = tmp_path / "danv2_x2_setting1.pth"
    torch.save(to_release_state_dict(model.state_dict()), release)
    out = tmp_path / "out.pth"
    assert main(["convert", str(release), str(out)]) == 0
    assert "network_g:" in capsys.readouterr().out
    _assert_same_model(out, dan_blocks.load_model(release))
    _assert_same_model(out, model.eval())


def test_convert_never_replaces_its_input(tmp_path, capsys) -> None:
    src = tmp_path / "x.pth"
    save_model(DANv1(**TINY, reduction=4), src)
    before = src.read_bytes()
    link = tmp_path / "link.pth"
    os.symlink(src, link)
    for out in (src, tmp_path / "." / "x.pth", link):
        for extra in ([], ["--overwrite"]):
            assert main(["convert", str(src), str(out), *extra]) == 2
            err = capsys.readouterr().err
            assert "usage error" in err and "is the input file" in err and "Traceback" not in err
    assert src.read_bytes() == before and os.path.islink(link)
    assert sorted(os.listdir(tmp_path)) == ["link.pth", "x.pth"]


def test_convert_refuses_an_existing_output_without_overwrite(tmp_path, capsys) -> None:
    torch.manual_seed(2)
    original = DANv2(**TINY, ng=1, est_tail_nf=8)
    src, dst = tmp_path / "a.pth", tmp_path / "b.pth"
    save_model(original, src)
    dst.write_bytes(b"mine")
    assert main(["convert", str(src), str(dst)]) == 1
    err = capsys.readouterr().err
    assert "FileExistsError" in err and str(dst) in err and "--overwrite" in err
    assert dst.read_bytes() == b"mine"
    assert main(["convert", str(src), str(dst), "--overwrite"]) == 0
    _assert_same_model(dst, original)


def test_convert_into_a_folder_that_takes_no_file_names_it(tmp_path, capsys) -> None:
    src = tmp_path / "a.pth"
    save_model(DANv1(**TINY, reduction=4), src)
    if not os.path.isdir("/proc") or _can_create("/proc/x.pth"):
        pytest.skip("needs /proc, a folder where no file can be created")
    assert main(["convert", str(src), "/proc/x.pth"]) == 1
    err = capsys.readouterr().err
    assert "cannot write /proc/x.pth" in err and "cannot create a file in /proc" in err
    assert "enforce fail" not in err and "RuntimeError" not in err


def _can_create(path: str) -> bool:
    try:
        with open(path, "wb"):
            pass
    except OSError:
        return False
    os.remove(path)
    return True


def test_atomic_save_turns_torchs_failed_open_into_an_error_naming_the_target(tmp_path, monkeypatch) -> None:
    def failed_open(obj, path):  # what torch's C++ writer raises when it cannot open its file
        raise RuntimeError(f"[enforce fail at inline_container.cc:747] . open file failed, file path: {path}")

    monkeypatch.setattr(torch, "save", failed_open)
    target = tmp_path / "net.pth"
    with pytest.raises(OSError, match=rf"cannot write {target}: torch.save could not open the file"):
        atomic_save({"w": torch.ones(1)}, target)
    assert os.listdir(tmp_path) == []


def test_write_errors_name_the_target_not_only_the_temporary_file(tmp_path) -> None:
    target = tmp_path / "out.yml"
    with pytest.raises(PermissionError, match=rf"cannot write {target}: Permission denied") as info, \
            atomic_path(target) as tmp:
        raise PermissionError(errno.EACCES, "Permission denied", tmp)  # e.g. a read-only folder
    assert info.value.errno == errno.EACCES and os.listdir(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="the path is empty"):
        atomic_write_text("", "text")


def test_options_output_path_is_checked_like_the_other_commands(tmp_path, capsys) -> None:
    a_file = tmp_path / "afile.txt"
    a_file.write_text("keep")
    for out in (a_file / "under.yml", a_file / "deeper" / "under.yml"):
        assert main(["options", QUICKSTART, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert "usage error" in err and f"{a_file} is a file, not a folder" in err
    assert main(["options", QUICKSTART, "-o", ""]) == 2
    assert "the path is empty" in capsys.readouterr().err
    assert a_file.read_text() == "keep" and sorted(os.listdir(tmp_path)) == ["afile.txt"]
    # a path ending in / is a folder (created), that gets the file under its own name
    assert main(["options", QUICKSTART, "-o", str(tmp_path / "new") + "/"]) == 0
    written = tmp_path / "new" / QUICKSTART
    assert yaml.safe_load(written.read_text())["network_g"]["type"] == "DANv2"


def test_options_write_error_names_the_target(capsys) -> None:
    if not os.path.isdir("/proc") or _can_create("/proc/nope.yml"):
        pytest.skip("needs /proc, a folder where no file can be created")
    assert main(["options", QUICKSTART, "-o", "/proc/nope.yml"]) == 1
    err = capsys.readouterr().err
    assert "cannot write /proc/nope.yml" in err and "Traceback" not in err
