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

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "TRACEBACK_ENV", "UsageError", "report_error",
           "run_command"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: set to 1 to see full tracebacks instead of one-line errors
TRACEBACK_ENV = "DAN_BLOCKS_TRACEBACK"


class UsageError(ValueError):
    """A mistake on the command line (exit code 2)."""


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
