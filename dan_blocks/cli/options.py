"""``dan-blocks options``: the option files shipped inside the package (the repository's ``basicsr_options/``).

``dan-blocks options`` lists them; ``dan-blocks options NAME -o PATH`` writes one out (``NAME``: its path as listed,
e.g. ``train/train_DANv2_setting1_x4.yml``, or its file name when that is unique).
"""

from __future__ import annotations

import argparse
import os
from importlib import resources
from importlib.abc import Traversable

from .errors import UsageError, output_path, run_command

__all__ = ["COMMAND", "HELP", "main", "shipped_options"]

COMMAND = "options"
HELP = "list the option files shipped with dan-blocks, or write one out: options NAME -o PATH"


def _root() -> Traversable:
    return resources.files("dan_blocks") / "basicsr_options"


def shipped_options() -> dict[str, Traversable]:
    """``{relative path: file}`` of every shipped option file, sorted."""
    found: dict[str, Traversable] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith((".yml", ".yaml")):
                found[f"{prefix}{entry.name}"] = entry

    root = _root()
    if root.is_dir():
        walk(root, "")
    return found


def _describe(entry: Traversable) -> str:
    for line in entry.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def _resolve(name: str, files: dict[str, Traversable]) -> str:
    if name in files:
        return name
    matches = [key for key in files if os.path.basename(key) == name or key == f"{name}.yml"]
    if len(matches) == 1:
        return matches[0]
    hint = f"; several match: {', '.join(matches)}" if matches else ""
    raise UsageError(f"no shipped option file {name!r}{hint} (run `dan-blocks options` for the list)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"dan-blocks {COMMAND}", description=HELP)
    parser.add_argument("name", nargs="?", help="an option file as listed (omit to list them)")
    parser.add_argument(
        "-o", "--output", help="where to write it: a file, or a folder (existing, or a path ending in /) that gets "
        "the file under its own name; missing folders are created"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    return parser


def _run(argv: list[str]) -> int:
    from dan_blocks.utils import atomic_write_text

    args = build_parser().parse_args(argv)
    files = shipped_options()
    if args.name is None:
        if not files:
            raise FileNotFoundError("this installation holds no option files (dan_blocks/basicsr_options)")
        width = max(len(key) for key in files)
        for key, entry in files.items():
            print(f"{key:<{width}}  {_describe(entry)}")
        print(f"\nwrite one out: dan-blocks {COMMAND} NAME -o my_options.yml")
        return 0
    key = _resolve(args.name, files)
    if args.output is None:
        print(files[key].read_text(encoding="utf-8"), end="")
        return 0
    target = output_path(args.output, "-o/--output", default_name=os.path.basename(key))
    if os.path.lexists(target) and not args.overwrite:
        raise FileExistsError(f"{target} exists (use --overwrite to replace it)")
    text = files[key].read_text(encoding="utf-8")
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    atomic_write_text(target, text)
    print(f"wrote {key} to {target}")
    return 0


def main(argv: list[str]) -> int:
    return run_command(COMMAND, lambda: _run(argv))
