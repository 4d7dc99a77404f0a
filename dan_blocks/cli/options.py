"""``dan-blocks options``: the option files shipped inside the package (the repository's ``basicsr_options/``).

``dan-blocks options`` lists them; ``dan-blocks options NAME -o PATH`` writes one out (``NAME``: its path as listed,
e.g. ``train/train_DANv2_setting1_x4.yml``, or its file name when that is unique).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import textwrap
from importlib import resources
from importlib.abc import Traversable

from .conventions import add_output, command_parser
from .errors import UsageError, output_path, run_command

__all__ = ["COMMAND", "HELP", "build_parser", "describe", "main", "shipped_options"]

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


#: where a command line starts inside an option file's header comment (the rest of that line is the command)
_COMMAND_START = re.compile(r"(?:^|\s)(?:dan-blocks|torchrun|python) ")


def describe(text: str) -> str:
    """The description of an option file: the prose of its leading comment block, whole, without the command
    lines in it (they name repository paths; `main` prints the commands to run instead)."""
    parts: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        prose = line.lstrip("#").strip()
        match = _COMMAND_START.search(prose)
        if match is not None:
            prose = prose[: match.start()].rstrip()
            if prose.endswith(":"):
                # "Test DAN v2, setting 1, x4: dan-blocks test ..." -> the sentence; a bare label ("Released
                # weights: dan-blocks convert ...") says nothing without its command
                prose = prose[:-1].rstrip()
                prose = f"{prose}." if len(prose.split()) > 2 else ""
            elif not prose and parts and parts[-1].endswith(":"):  # "... as released:" + a command line
                parts[-1] = parts[-1][:-1] + "."
        if prose:
            parts.append(prose)
    return " ".join(parts)


def _command_of(key: str) -> str:
    """The dan-blocks command that runs an option file: ``test`` for test options, else ``train``."""
    return "test" if os.path.basename(key).startswith("test") else "train"


def _for_the_copy(text: str, key: str, target: str) -> str:
    """``text`` of the shipped file ``key`` written to ``target``: the command lines of its header name the copy
    instead of the repository path (which a wheel user does not have)."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if not line.startswith("#"):
            break
        lines[index] = line.replace(f"basicsr_options/{key}", target)
    return "".join(lines)


def _resolve(name: str, files: dict[str, Traversable]) -> str:
    if name in files:
        return name
    matches = [key for key in files if os.path.basename(key) == name or key == f"{name}.yml"]
    if len(matches) == 1:
        return matches[0]
    hint = f"; several match: {', '.join(matches)}" if matches else ""
    raise UsageError(f"no shipped option file {name!r}{hint} (run `dan-blocks options` for the list)")


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(COMMAND, HELP + ". The files are part of the installed package.", [
        "dan-blocks options                                 # list them, with their descriptions",
        "dan-blocks options test_DANv2_setting1_x4.yml      # print one",
        "dan-blocks options train/train_DANv2_setting1_x4.yml -o my_train.yml",
        "dan-blocks train --opt my_train.yml",
    ])
    parser.add_argument("name", nargs="?", help="an option file as listed (omit to list them)")
    add_output(
        parser, "where to write it: a file, or a folder (existing, or a path ending in /) that gets the file under "
        "its own name; missing folders are created"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    return parser


def _listing(files: dict[str, Traversable]) -> str:
    width = max(40, min(shutil.get_terminal_size((100, 24)).columns, 120))
    lines: list[str] = []
    for key, entry in files.items():
        lines.append(key)
        text = describe(entry.read_text(encoding="utf-8")) or "(no description)"
        lines += textwrap.wrap(text, width, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False,
                               break_long_words=False)
    example = "train/train_DANv2_setting1_x4.yml"
    if example not in files:
        example = next((key for key in files if key.startswith("train/")), next(iter(files)))
    lines += [
        "",
        "print one:      dan-blocks options NAME",
        "write one out:  dan-blocks options NAME -o my_options.yml",
        "then run it:    dan-blocks train --opt my_options.yml   (test options: dan-blocks test --opt ...)",
        f"for example:    dan-blocks options {example} -o my_options.yml",
    ]
    return "\n".join(lines)


def _run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    files = shipped_options()
    if args.name is None:
        if not files:
            raise FileNotFoundError("this installation holds no option files (dan_blocks/basicsr_options)")
        print(_listing(files))
        return 0
    key = _resolve(args.name, files)
    if args.output is None:
        print(files[key].read_text(encoding="utf-8"), end="")
        return 0
    target = output_path(args.output, "-o/--output", default_name=os.path.basename(key))
    if os.path.lexists(target) and not args.overwrite:
        raise FileExistsError(f"{target} exists (use --overwrite to replace it)")
    from dan_blocks.utils.files import atomic_write_text

    text = _for_the_copy(files[key].read_text(encoding="utf-8"), key, target)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    atomic_write_text(target, text)
    print(f"wrote {key} to {target}")
    print(f"run it: dan-blocks {_command_of(key)} --opt {shlex.quote(target)}")
    return 0


def main(argv: list[str]) -> int:
    return run_command(COMMAND, lambda: _run(argv))
