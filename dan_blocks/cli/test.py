"""``dan-blocks test``: BasicSR's own ``test_pipeline`` with dan_blocks registered."""

from __future__ import annotations

from ._pipeline import run_basicsr_pipeline

__all__ = ["COMMAND", "HELP", "main"]

COMMAND = "test"
HELP = "test through BasicSR's test_pipeline: -opt FILE [--force_yml ...]"


def main(argv: list[str]) -> int:
    """Run ``basicsr.test.test_pipeline(cwd)`` with ``argv`` as its command line; returns the exit status."""
    return run_basicsr_pipeline("test", list(argv))
