"""Entry point of the ``dan-blocks`` command.

Each sub-command is a module in `dan_blocks.cli` exposing ``COMMAND`` (its name), ``HELP`` (one line)
and ``main(argv: list[str]) -> int``. Sub-commands parse their own arguments, so ``train``/``test`` can hand
them to BasicSR's own option parser untouched.

``dan-blocks --help`` imports none of them: `COMMANDS` names each command's module and one-line help, and only
the module of the command being run is imported. The sub-command modules import torch and BasicSR inside their
``main()``, so ``dan-blocks <command> --help`` is fast too.
"""

from __future__ import annotations

import difflib
import importlib
import sys

__all__ = ["COMMANDS", "main"]

#: command -> (module, one-line help), in the order ``dan-blocks --help`` lists them. Each module's own ``HELP``
#: is the same line (tests/cli/test_cli_conventions.py checks it).
COMMANDS: dict[str, tuple[str, str]] = {
    "smoke": (
        "dan_blocks.cli.smoke",
        "end-to-end smoke run on CPU: a small DAN v2 upsamples skimage's astronaut, writes PNGs and timings",
    ),
    "convert": (
        "dan_blocks.cli.convert",
        "convert a released DAN or MANet checkpoint to a BasicSR checkpoint and print the network_g options",
    ),
    "fit-pca": (
        "dan_blocks.cli.fit_pca",
        "fit the PCA kernel encoder of a setting (the release's method, seeded) and save it",
    ),
    "make-testset": (
        "dan_blocks.cli.make_testset",
        "make a Gaussian8 or DIV2KRK-style anisotropic blind-SR test set from HR images",
    ),
    "train": (
        "dan_blocks.cli.train",
        "train through BasicSR's train_pipeline: -opt FILE [--launcher pytorch] [--auto_resume] [--force_yml ...]",
    ),
    "test": ("dan_blocks.cli.test", "test through BasicSR's test_pipeline: -opt FILE [--force_yml ...]"),
    "quickstart": (
        "dan_blocks.cli.quickstart",
        "train a small DANv2 on built-in photos via BasicSR, test on Gaussian8 x4, compare with bicubic (CPU)",
    ),
    "sr": (
        "dan_blocks.cli.sr",
        "super-resolve images (PNG/JPEG/TIFF files or folders) with a DAN model, optionally tiled",
    ),
    "options": (
        "dan_blocks.cli.options",
        "list the option files shipped with dan-blocks, or write one out: options NAME -o PATH",
    ),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: dan-blocks <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_line}" for name, (_, help_line) in COMMANDS.items()]
    lines += [
        "",
        "options:",
        "  -h, --help     show this message",
        "  -V, --version  show the version",
        "",
        "Run `dan-blocks <command> --help` for a command's options and an example.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a sub-command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from dan_blocks._version import __version__

        print(f"dan-blocks {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(f"dan-blocks: unknown command {name!r}{hint} (choose from: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
