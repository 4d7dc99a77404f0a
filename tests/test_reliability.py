"""Bad input gives a clear error before any work starts, and partial files are never processed as whole."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from test_cli_train_support import tiny_train_options, write_yaml

import dan_blocks
from dan_blocks.cli.main import main
from dan_blocks.data.image_io import read_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    ("edit", "named", "close"),
    [
        (lambda o: o.update(manual_sed=o.pop("manual_seed")), "'manual_sed'", "manual_seed"),
        (lambda o: o.update(netwrk_g=o.pop("network_g")), "'netwrk_g'", "network_g"),
        (lambda o: o["logger"].update(print_frq=o["logger"].pop("print_freq")), "'print_frq'", "print_freq"),
        (lambda o: o["path"].update(pretrain_netwrk_g="x.pth"), "'pretrain_netwrk_g'", "pretrain_network_g"),
        (lambda o: o["datasets"].update(tarin=o["datasets"].pop("train")), "'tarin'", "train"),
    ],
    ids=["top-level", "network_g", "logger", "path", "dataset-phase"],
)
def test_a_typo_anywhere_is_named_before_any_work(tmp_path, monkeypatch, capsys, edit, named, close) -> None:
    monkeypatch.chdir(tmp_path)
    opt = tiny_train_options("typo", total_iter=2)
    edit(opt)
    assert main(["train", "-opt", write_yaml(tmp_path / "o.yml", opt)]) == 1
    err = capsys.readouterr().err
    assert named in err and f"did you mean '{close}'?" in err and "accepted keys:" in err
    assert not (tmp_path / "experiments").exists() and not (tmp_path / "x.pth").exists()  # nothing started


def test_a_typo_in_force_yml_is_named(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    yml = write_yaml(tmp_path / "o.yml", tiny_train_options("force", total_iter=2))
    assert main(["train", "-opt", yml, "--force_yml", "logger:print_freqq=3"]) == 1
    err = capsys.readouterr().err
    assert "'print_freqq' (did you mean 'print_freq'?)" in err
    assert not (tmp_path / "experiments").exists()


def test_torchrun_without_launcher_is_refused(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    yml = write_yaml(tmp_path / "o.yml", tiny_train_options("torchrun", total_iter=2))
    assert main(["train", "-opt", yml]) == 2
    assert "--launcher pytorch" in capsys.readouterr().err
    assert not (tmp_path / "experiments").exists()


def _photo(path, shape=(20, 18, 3)) -> None:
    rng = np.random.default_rng(0)
    assert cv2.imwrite(str(path), rng.integers(0, 255, shape, dtype=np.uint8))


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_a_truncated_image_is_named_and_never_processed(tmp_path, ext: str) -> None:
    whole = tmp_path / f"whole{ext}"
    _photo(whole, (64, 48, 3))
    data = whole.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert read_image(whole).shape == (64, 48, 3)
    decoded = cv2.imread(str(cut))  # OpenCV alone hands back a cut JPEG with its missing part filled grey
    if ext == ".jpg":
        assert decoded is not None
    with pytest.raises(OSError, match=r"cut\.(jpg|png)"):
        read_image(cut)
    if decoded is not None:
        with pytest.raises(OSError, match="truncated"):
            read_image(cut)


def test_sr_skips_truncated_hidden_and_own_outputs(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    model = dan_blocks.dan_v2(2, nf=8, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8, loop=1).eval()
    dan_blocks.save_model(model, tmp_path / "m.pth")
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "a.png")
    _photo(folder / ".hidden.png")
    _photo(tmp_path / "b.jpg", (40, 40, 3))
    jpeg = (tmp_path / "b.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    args = ["sr", "-m", str(tmp_path / "m.pth"), str(folder), "-o", str(folder), "--no-progress"]
    assert main(args) == 1  # something failed: the cut JPEG and the hidden file
    err = capsys.readouterr().err
    assert "cut.jpg" in err and "truncated" in err and ".hidden.png: hidden file, skipped" in err
    assert (folder / "a_x2.png").is_file() and not (folder / "cut_x2.jpg").exists()
    before = sorted(p.name for p in folder.iterdir())
    assert main([*args, "--overwrite"]) == 1  # a rerun into the same folder: outputs are not inputs
    assert sorted(p.name for p in folder.iterdir()) == before
    assert "a_x2_x2" not in capsys.readouterr().err
