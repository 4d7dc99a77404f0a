"""BasicSR's console during a dan-blocks pipeline: its banner, option dump and network dumps routed to its log
files only (used by ``dan-blocks quickstart``, whose console shows its own progress and results).

Why a wrapper: basicsr 1.4.2's ``get_root_logger`` gives the ``basicsr`` logger a console handler and, only the
first time in a process, a file handler; ``get_env_info`` (the banner), ``dict2str`` (the options) and
``print_network`` all log through it, and ``train_pipeline`` / ``test_pipeline`` print ``Disable distributed.``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

__all__ = ["basicsr_console_quiet", "pipeline_stdout"]


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
    from . import compat

    compat.ensure_basicsr_importable()
    import basicsr.test
    import basicsr.train
    import basicsr.utils.logger as basicsr_logger

    console_filter = _ConsoleFilter()
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
            elif isinstance(handler, logging.StreamHandler) and console_filter not in handler.filters:
                handler.addFilter(console_filter)
                filtered.append(handler)
        return logger

    for module in modules:
        module.get_root_logger = get_root_logger  # type: ignore[attr-defined]
    try:
        yield log_files
    finally:
        for module, original in originals.items():
            module.get_root_logger = original  # type: ignore[attr-defined]
        for handler in filtered:
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
