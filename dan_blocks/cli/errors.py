"""How every ``dan-blocks`` command reports errors: one line on stderr and the same exit codes everywhere.

Exit codes: 0 success; 1 the work failed (a bad file, a failed image, a training error); 2 a usage error (a
wrong or missing argument: argparse's own errors and `UsageError`); 130 interrupted (Ctrl-C). Set
``DAN_BLOCKS_TRACEBACK=1`` to see the full traceback instead of the one line.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "TRACEBACK_ENV", "UsageError", "check_writable",
           "output_path", "report_error", "run_command"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: set to 1 to see full tracebacks instead of one-line errors
TRACEBACK_ENV = "DAN_BLOCKS_TRACEBACK"


class UsageError(ValueError):
    """A mistake on the command line (exit code 2)."""


def _file_in_the_way(path: str) -> str | None:
    """The nearest existing folder above ``path`` when it is not a folder (a file), else None."""
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return parent if parent and not os.path.isdir(parent) else None


def output_path(path: str, what: str, *, default_name: str | None = None, folder: bool = False) -> str:
    """Check where a command will write, before any work; returns the path to write (nothing is created).

    ``what`` names the argument in errors (``-o/--output``). ``folder=True``: ``path`` is an output folder; it
    must not be an existing file. Otherwise ``path`` is a file: an existing folder, or a path ending in ``/``,
    means ``<path>/<default_name>`` (a `UsageError` without a ``default_name``). Either way a file standing
    where a folder of the path should be (``-o photo.png/out.pth``) is a `UsageError` naming it.

    Raises:
        UsageError: the path cannot be written as asked (exit code 2).
    """
    if not path:
        raise UsageError(f"{what}: the path is empty")
    as_folder = path.endswith(("/", os.sep))
    target = os.path.normpath(path)
    blocker = _file_in_the_way(target)
    if blocker is not None:
        raise UsageError(f"{what} {path}: {blocker} is a file, not a folder; choose another output path")
    if folder:
        if os.path.exists(target) and not os.path.isdir(target):
            raise UsageError(f"{what} {path}: it is a file, expected a folder (existing or to be created)")
        return target
    if as_folder or os.path.isdir(target):
        if default_name is None:
            raise UsageError(f"{what} {path}: it is a folder; give the name of the file to write in it")
        target = os.path.join(target, default_name)
        if os.path.isdir(target):
            raise UsageError(f"{what} {path}: {target} is a folder; give the name of the file to write")
    return target


def check_writable(folder: str, what: str) -> None:
    """Check, before any work, that files can be created in ``folder`` (an output folder, made later): an
    existing one by creating and removing a file in it, a new one by its nearest existing parent folder.

    Raises:
        UsageError: naming ``what`` and the cause (a read-only folder or file system; exit code 2).
    """
    import tempfile

    try:
        if os.path.isdir(folder):
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".dan-blocks-check-"):
                pass
            return
        parent = os.path.dirname(os.path.abspath(folder))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(13, f"{parent} is not writable")
    except OSError as err:
        cause = err.strerror or err
        raise UsageError(f"{what} {folder}: cannot write there ({cause}); choose another folder") from None


def report_error(command: str, err: BaseException) -> int:
    """Print ``err`` as one line (the traceback with ``DAN_BLOCKS_TRACEBACK=1``); returns its exit code."""
    code = EXIT_USAGE if isinstance(err, UsageError) else EXIT_FAILED
    if os.environ.get(TRACEBACK_ENV) == "1":
        traceback.print_exception(err)
        return code
    message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    kind = "usage error" if code == EXIT_USAGE else f"error: {type(err).__name__}"
    print(f"dan-blocks {command}: {kind}: {message or type(err).__name__}", file=sys.stderr)
    if code == EXIT_FAILED:
        print(f"(set {TRACEBACK_ENV}=1 for the full traceback)", file=sys.stderr)
    return code


def run_command(command: str, body: Callable[[], int | None]) -> int:
    """Run a command's ``body`` and turn every way it can end into an exit code (see the module docstring)."""
    try:
        return int(body() or EXIT_OK)
    except SystemExit as exit_:  # argparse: --help (0) and usage errors (2)
        code = exit_.code
        return EXIT_USAGE if isinstance(code, str) else int(code or EXIT_OK)
    except KeyboardInterrupt:
        print(f"dan-blocks {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader of our output went away (`dan-blocks options | head`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as err:
        return report_error(command, err)
