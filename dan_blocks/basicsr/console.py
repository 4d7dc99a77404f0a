"""BasicSR's console during a dan-blocks pipeline.

- `training_console`: what ``dan-blocks train`` / ``test`` print (issue 23): by default a handful of lines
  (the start, the training progress about five times per run, validation results, the end, warnings); the full
  BasicSR log (banner, options, network, every progress line) still goes to the log file. ``--quiet``: warnings
  only; ``--verbose``: BasicSR's own console, unchanged.
- `basicsr_console_quiet`: used by ``dan-blocks quickstart``, whose console shows its own progress and results;
  while it is active, `training_console` leaves the console (and the thread count) to it.

Why a wrapper: basicsr 1.4.2's ``get_root_logger`` gives the ``basicsr`` logger a console handler and, only the
first time in a process, a file handler; ``get_env_info`` (the banner), ``dict2str`` (the options) and
``print_network`` all log through it, and ``train_pipeline`` / ``test_pipeline`` print ``Disable distributed.``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
from collections.abc import Iterator

__all__ = ["basicsr_console_quiet", "console_step", "pipeline_stdout", "quiet_console_active", "training_console"]

#: set while `basicsr_console_quiet` is active (the quickstart owns the console)
_QUIET_ACTIVE: list[bool] = []

#: BasicSR's progress line: ``[name..][epoch:  0, iter:       4, lr:(...)] ...``
_PROGRESS = re.compile(r"\]\[epoch:\s*-?\d+, iter:\s*([\d,]+)")
#: messages of BasicSR's pipelines (and DANModel) the default console keeps
_KEPT = ("Start training", "Resuming training", "End of training", "Validation", "Testing ")


def quiet_console_active() -> bool:
    """True while `basicsr_console_quiet` is active (inside ``dan-blocks quickstart``)."""
    return bool(_QUIET_ACTIVE)


def console_step(total_iter: int, print_freq: int) -> int:
    """Every how many iterations the default console shows a progress line: a multiple of ``print_freq`` (BasicSR
    logs only those) giving about five lines per run."""
    freq = max(1, int(print_freq))
    return freq * max(1, math.ceil(max(1, int(total_iter)) / 5 / freq))


class _TrainingConsoleFilter(logging.Filter):
    """The default console of ``train`` / ``test``: warnings, kept messages, every ``step``-th progress line and
    the last one; ``quiet``: warnings only."""

    def __init__(self, quiet: bool, step: int, total_iter: int) -> None:
        super().__init__()
        self.quiet, self.step, self.total_iter = quiet, max(1, step), total_iter

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        if self.quiet:
            return False
        message = record.getMessage()
        match = _PROGRESS.search(message)
        if match:
            current = int(match.group(1).replace(",", ""))
            return current % self.step == 0 or current >= self.total_iter
        return message.startswith(_KEPT)


class _ConsoleFilter(logging.Filter):
    """What BasicSR's console handler may still print during the quickstart: training progress and warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "][epoch:" in record.getMessage()


@contextlib.contextmanager
def basicsr_console_quiet() -> Iterator[list[str]]:
    """While active, BasicSR's banner, option and network dumps go to its log files only, not the console.

    BasicSR's ``get_root_logger`` gives the ``basicsr`` logger a console ``StreamHandler`` and, the first time
    in a process, a ``FileHandler`` on the pipeline's log file; ``get_env_info`` (the banner), ``dict2str`` (the
    options) and ``print_network`` all log through it. Here the ``get_root_logger`` that ``train_pipeline`` /
    ``test_pipeline`` call is wrapped: each pipeline gets a fresh logger with its own log file (unwrapped, the
    second pipeline of a process would log into the first one's file), and the console handler gets a filter
    letting through only training progress and warnings. ``print`` output of the pipelines (``Disable
    distributed.``) is kept off stdout by `pipeline_stdout`. On exit the wrappers and filters are removed,
    so later ``dan-blocks train`` / ``test`` runs print as BasicSR does.

    Yields the list of log files the pipelines opened, in order.
    """
    _QUIET_ACTIVE.append(True)
    try:
        with _filtered_console(_ConsoleFilter()) as log_files:
            yield log_files
    finally:
        _QUIET_ACTIVE.pop()


@contextlib.contextmanager
def training_console(mode: str, total_iter: int = 1, print_freq: int = 1) -> Iterator[list[str]]:
    """The console of ``dan-blocks train`` / ``test`` while active (see the module docstring). ``mode``:
    ``"normal"``, ``"quiet"`` or ``"verbose"``; ``total_iter`` and ``print_freq`` (the option file's) pace the
    progress lines. Inside `basicsr_console_quiet` it changes nothing. Yields the log files the pipelines opened."""
    if mode not in ("normal", "quiet", "verbose"):
        raise ValueError(f"console mode {mode!r}: expected 'normal', 'quiet' or 'verbose'")
    if quiet_console_active():
        yield []
        return
    console_filter = None
    if mode != "verbose":
        console_filter = _TrainingConsoleFilter(mode == "quiet", console_step(total_iter, print_freq), total_iter)
    with _filtered_console(console_filter) as log_files:
        if mode == "verbose":
            yield log_files
        else:
            with pipeline_stdout():
                yield log_files


@contextlib.contextmanager
def _filtered_console(console_filter: logging.Filter | None) -> Iterator[list[str]]:
    """Each pipeline gets a fresh ``basicsr`` logger with its own log file; its console handler gets
    ``console_filter`` (None: BasicSR's console as is). Yields the log files opened, in order."""
    from . import compat

    compat.ensure_basicsr_importable()
    import basicsr.test
    import basicsr.train
    import basicsr.utils.logger as basicsr_logger

    filtered: list[logging.Handler] = []
    log_files: list[str] = []
    modules = (basicsr.train, basicsr.test)
    originals = {module: module.get_root_logger for module in modules}
    wrapped = basicsr_logger.get_root_logger

    def get_root_logger(logger_name: str = "basicsr", log_level: int = logging.INFO,
                        log_file: str | None = None) -> logging.Logger:
        logger = logging.getLogger(logger_name)
        if log_file is not None and logger_name in basicsr_logger.initialized_logger:
            for handler in list(logger.handlers):  # a new pipeline: its own log file, a fresh console handler
                logger.removeHandler(handler)
                handler.close()
            del basicsr_logger.initialized_logger[logger_name]
        logger = wrapped(logger_name=logger_name, log_level=log_level, log_file=log_file)
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                if handler.baseFilename not in log_files:
                    log_files.append(handler.baseFilename)
            elif (console_filter is not None and isinstance(handler, logging.StreamHandler)
                  and console_filter not in handler.filters):
                handler.addFilter(console_filter)
                filtered.append(handler)
        return logger

    for module in modules:
        module.get_root_logger = get_root_logger
    try:
        yield log_files
    finally:
        for module, original in originals.items():
            module.get_root_logger = original
        for handler in filtered:
            if console_filter is not None:
                handler.removeFilter(console_filter)


@contextlib.contextmanager
def pipeline_stdout() -> Iterator[None]:
    """BasicSR's own ``print`` calls (``Disable distributed.``) go to the ``basicsr`` logger (so its log file)."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        text = buffer.getvalue().strip()
        if text:
            logging.getLogger("basicsr").info(text)
