"""``dan-blocks train``: BasicSR's own ``train_pipeline`` with dan_blocks registered."""

from __future__ import annotations

from ._pipeline import run_basicsr_pipeline

__all__ = ["COMMAND", "HELP", "main"]

COMMAND = "train"
HELP = "train through BasicSR's train_pipeline: -opt FILE [--launcher pytorch] [--auto_resume] [--force_yml ...]"


def main(argv: list[str]) -> int:
    """Run ``basicsr.train.train_pipeline(cwd)`` with ``argv`` as its command line; returns the exit status."""
    return run_basicsr_pipeline("train", list(argv))
