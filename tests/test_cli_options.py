"""``dan-blocks options``: the shipped option files are inside the package (and the wheel) and can be written out."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import zipfile

import pytest

from dan_blocks.cli.main import main
from dan_blocks.cli.options import shipped_options

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE = sorted(p.relative_to(ROOT / "basicsr_options").as_posix() for p in (ROOT / "basicsr_options").rglob("*.yml"))


def test_every_source_file_is_shipped_and_listed(capsys) -> None:
    assert list(shipped_options()) == SOURCE and len(SOURCE) >= 20
    assert main(["options"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = [line.split()[0] for line in lines[: len(SOURCE)]]
    assert listed == SOURCE


def test_write_one_out(tmp_path, capsys) -> None:
    name = "train/train_DANv2_setting1_x4.yml"
    assert main(["options", name, "-o", str(tmp_path / "mine.yml")]) == 0
    assert (tmp_path / "mine.yml").read_text() == (ROOT / "basicsr_options" / name).read_text()
    assert main(["options", "quickstart_DANv2_real_x4.yml", "-o", str(tmp_path)]) == 0  # a folder, a unique name
    assert (tmp_path / "quickstart_DANv2_real_x4.yml").is_file()
    assert main(["options", name, "-o", str(tmp_path / "mine.yml")]) == 1  # never overwrites silently
    assert "exists" in capsys.readouterr().err
    assert main(["options", "nope.yml"]) == 2
    assert "no shipped option file 'nope.yml'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_built_wheel_holds_the_option_files(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT), "-w",
         str(tmp_path)], capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("dan_blocks-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.removeprefix("dan_blocks/basicsr_options/") for n in names
                     if n.startswith("dan_blocks/basicsr_options/") and n.endswith(".yml"))
    assert shipped == SOURCE
