"""The ``dan-blocks`` commands' shared option spellings, one helper per option (docs/cli.md lists them).

Canonical spellings: ``-o/--output``, ``--opt``, ``--quiet``, ``--device``, ``--threads``, hyphenated long
options. Older spellings stay accepted as aliases (``--out``, ``-opt``, ``--no-progress``, ``--auto_resume``
...) and are shown in each command's ``--help`` beside the canonical one. Every command's help ends with
examples (`command_parser`).

Only the standard library is imported here, so ``dan-blocks <command> --help`` stays fast.
"""

from __future__ import annotations

import argparse
import shutil
import textwrap
from collections.abc import Sequence
from typing import Any

__all__ = [
    "DEVICES",
    "HelpFormatter",
    "add_device",
    "add_output",
    "add_quiet",
    "add_threads",
    "command_parser",
    "parse_threads",
    "resolve_device",
    "spelling_used",
]

#: ``--device`` choices: ``auto`` is CUDA when available, else CPU
DEVICES = ("auto", "cpu", "cuda")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written (epilog), and an option's spellings listed once with one metavar:
    ``-o, --output, --out PATH`` rather than ``-o PATH, --output PATH, --out PATH``."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        metavar = self._format_args(action, self._get_default_metavar_for_optional(action))
        return f"{', '.join(action.option_strings)} {metavar}"


def command_parser(command: str, description: str, examples: Sequence[str]) -> argparse.ArgumentParser:
    """The parser of ``dan-blocks <command>``: its description, then ``examples`` (command lines, each with an
    optional ``  # comment``) after the options."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    width = max(40, min(shutil.get_terminal_size((100, 24)).columns, 100) - 2)
    paragraphs = description.split("\n\n")
    text = "\n\n".join(textwrap.fill(paragraph, width, break_on_hyphens=False) for paragraph in paragraphs)
    return argparse.ArgumentParser(
        prog=f"dan-blocks {command}", description=text, epilog=epilog, formatter_class=HelpFormatter
    )


def add_output(
    parser: argparse.ArgumentParser, help_text: str, *, required: bool = False, default: str | None = None,
    metavar: str = "PATH", old: Sequence[str] = (),
) -> argparse.Action:
    """``-o/--output`` (plus the command's ``old`` spellings, e.g. ``--out``) into ``args.output``."""
    if old:
        help_text += f" ({', '.join(old)}: the older spelling)"
    return parser.add_argument(
        "-o", "--output", *old, dest="output", required=required, default=default, metavar=metavar, help=help_text
    )


def spelling_used(argv: Sequence[str], action: argparse.Action) -> str:
    """How ``argv`` spelled ``action``'s option (``--out`` or ``-o``...), so that an error names what the user
    typed; all its spellings joined by ``/`` when it was not given."""
    for arg in reversed(argv):
        for spelling in action.option_strings:
            if arg == spelling or (spelling.startswith("--") and arg.startswith(spelling + "=")):
                return spelling
    return "/".join(action.option_strings)


def add_quiet(parser: argparse.ArgumentParser, what: str = "no progress bar") -> argparse.Action:
    """``--quiet`` (alias ``--no-progress``) into ``args.quiet``."""
    return parser.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true", help=what)


def parse_threads(text: str) -> int:
    """argparse ``type=`` of ``--threads``: `dan_blocks.utils.threads.parse_threads`, imported only when the
    option is given (``dan_blocks.utils`` imports torch)."""
    from dan_blocks.utils.threads import parse_threads as parse

    return parse(text)


def add_threads(parser: argparse.ArgumentParser, default: int | None = None) -> argparse.Action:
    """``--threads N`` (torch CPU threads) into ``args.threads``; ``default`` None: the machine's share
    (`dan_blocks.utils.threads.default_threads`, applied by the command)."""
    told = "the CPUs this process may use, or OMP_NUM_THREADS" if default is None else str(default)
    return parser.add_argument(
        "--threads", type=parse_threads, default=default, metavar="N", help=f"torch CPU threads (default: {told})"
    )


def add_device(parser: argparse.ArgumentParser, default: str = "auto") -> argparse.Action:
    """``--device {auto,cpu,cuda,cuda:N}`` into ``args.device`` (checked by `resolve_device`)."""
    return parser.add_argument(
        "--device", default=default, metavar="{auto,cpu,cuda,cuda:N}",
        help=f"where to compute: auto (CUDA when available), cpu, cuda or cuda:N (default: {default})",
    )


def resolve_device(spelling: str) -> Any:
    """The ``torch.device`` of a ``--device`` value; a `UsageError` for another spelling or a missing GPU."""
    import torch

    from .errors import UsageError

    text = spelling.strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        index = text.partition(":")[2]
        if index and not index.isdigit():
            raise UsageError(f"--device {spelling}: expected auto, cpu, cuda or cuda:N with N a GPU number")
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spelling}: this torch sees no CUDA GPU; use --device cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise UsageError(
                f"--device {spelling}: there are {torch.cuda.device_count()} GPU(s), numbered from 0"
            )
        return torch.device(text)
    raise UsageError(f"--device {spelling}: expected auto, cpu, cuda or cuda:N")
