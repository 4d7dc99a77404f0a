"""``dan-blocks make-testset`` (being written)."""

from __future__ import annotations

__all__ = ["COMMAND", "HELP", "main"]

COMMAND = "make-testset"
HELP = "make a Gaussian8 or DIV2KRK-style anisotropic blind-SR test set from HR images"


def main(argv: list[str]) -> int:
    raise SystemExit("make-testset: not available yet")
