"""``dan-blocks options``: the shipped option files are inside the package (and the wheel) and can be written out."""

from __future__ import annotations

import pathlib
import re

import yaml

from dan_blocks.cli.main import main
from dan_blocks.cli.options import shipped_options

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCE = sorted(p.relative_to(ROOT / "basicsr_options").as_posix() for p in (ROOT / "basicsr_options").rglob("*.yml"))


def _header_prose(path: pathlib.Path) -> list[str]:
    """The words of the file's leading comment block that are no command: a command starts at a word
    ``dan-blocks``/``torchrun``/``python`` and runs to the end of its line; a short label before it ("Released
    weights:") goes with it."""
    words: list[str] = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#")
        kept = re.split(r"(?:^|\s)(?:dan-blocks|torchrun|python) ", text)[0]
        if kept != text and kept.strip().endswith(":") and len(kept.split()) <= 2:
            kept = ""
        words += kept.split()
    return words


def test_every_source_file_is_shipped_and_listed_with_its_whole_description(capsys) -> None:
    assert list(shipped_options()) == SOURCE and len(SOURCE) >= 20
    assert main(["options"]) == 0
    out = capsys.readouterr().out
    listing, footer = out.split("\n\n", 1)
    names = [line for line in listing.splitlines() if not line.startswith(" ")]
    assert names == SOURCE
    blocks = listing.split("\n")
    for name in SOURCE:
        start = blocks.index(name) + 1
        end = next((i for i in range(start, len(blocks)) if not blocks[i].startswith(" ")), len(blocks))
        described = " ".join(blocks[start:end]).split()
        prose = _header_prose(ROOT / "basicsr_options" / name)
        # every word of the header's prose, in order (a "label:" before a removed command may end in "." instead)
        assert [w.rstrip(".:") for w in described if w.rstrip(".:")] == [w.rstrip(".:") for w in prose
                                                                          if w.rstrip(".:")], name
    # no repository paths: the commands shown work from a wheel
    assert "basicsr_options/" not in out
    assert "dan-blocks options NAME -o my_options.yml" in footer and "dan-blocks train --opt my_options.yml" in footer


def test_write_one_out(tmp_path, capsys) -> None:
    name = "train/train_DANv2_setting1_x4.yml"
    assert main(["options", name, "-o", str(tmp_path / "mine.yml")]) == 0
    source = (ROOT / "basicsr_options" / name).read_text()
    # the same file, whose header commands name the copy instead of the repository path
    assert (tmp_path / "mine.yml").read_text() == source.replace(f"basicsr_options/{name}", str(tmp_path / "mine.yml"))
    assert yaml.safe_load((tmp_path / "mine.yml").read_text()) == yaml.safe_load(source)
    assert f"run it: dan-blocks train --opt {tmp_path / 'mine.yml'}" in capsys.readouterr().out
    assert main(["options", "quickstart_DANv2_real_x4.yml", "-o", str(tmp_path)]) == 0  # a folder, a unique name
    assert (tmp_path / "quickstart_DANv2_real_x4.yml").is_file()
    assert main(["options", name, "-o", str(tmp_path / "mine.yml")]) == 1  # never overwrites silently
    assert "exists" in capsys.readouterr().err
    assert main(["options", "nope.yml"]) == 2
    assert "no shipped option file 'nope.yml'" in capsys.readouterr().err


# that a built wheel holds every option file: tests/test_packaging.py::test_the_wheel_holds_the_package_data
