"""Entry point of the ``dan-blocks`` command.

Each sub-command is a module in `dan_blocks.cli` exposing ``COMMAND`` (its name), ``HELP`` (one line)
and ``main(argv: list[str]) -> int``. Sub-commands parse their own arguments, so ``train``/``test`` can hand
them to BasicSR's own option parser untouched.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__all__ = ["SUBCOMMAND_MODULES", "main"]

#: modules providing sub-commands, in the order ``dan-blocks --help`` lists them
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "dan_blocks.cli.smoke",
    "dan_blocks.cli.convert",
    "dan_blocks.cli.fit_pca",
    "dan_blocks.cli.make_testset",
    "dan_blocks.cli.train",
    "dan_blocks.cli.test",
    "dan_blocks.cli.quickstart",
    "dan_blocks.cli.sr",
    "dan_blocks.cli.options",
)


def _commands() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for name in SUBCOMMAND_MODULES:
        module = importlib.import_module(name)
        found[module.COMMAND] = module
    return found


def _usage(commands: dict[str, ModuleType]) -> str:
    width = max(len(name) for name in commands)
    lines = ["usage: dan-blocks <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {module.HELP}" for name, module in commands.items()]
    lines += ["", "Run `dan-blocks <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a sub-command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    commands = _commands()
    if not args or args[0] in ("-h", "--help"):
        print(_usage(commands))
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from dan_blocks import __version__

        print(f"dan-blocks {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in commands:
        print(f"dan-blocks: unknown command {name!r}; choose from: {', '.join(commands)}", file=sys.stderr)
        return 2
    return int(commands[name].main(rest) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
