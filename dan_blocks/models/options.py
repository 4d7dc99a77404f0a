"""Option-block checking for DANModel: unknown keys are errors naming the key and the accepted ones."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["TRAIN_KEYS", "VAL_KEYS", "check_keys"]

#: keys DANModel reads from ``train:`` (BasicSR's SRModel keys plus DAN's)
TRAIN_KEYS: tuple[str, ...] = (
    "ema_decay",
    "optim_g",
    "lr_E",
    "scheduler",
    "total_iter",
    "warmup_iter",
    "pixel_opt",
    "kernel_opt",
    "iteration_weights",
)

#: keys DANModel reads from ``val:``
VAL_KEYS: tuple[str, ...] = ("val_freq", "save_img", "suffix", "metrics", "pbar", "kernel_zoom")


def check_keys(block: Mapping[str, Any] | None, accepted: Iterable[str], where: str) -> None:
    """Raise ``ValueError`` naming every unknown key of ``block``, the accepted keys and close matches.

    Args:
        block: the option block (None is accepted: nothing to check).
        accepted: the keys the consumer reads.
        where: the block's name in messages, e.g. ``"train (DANModel)"``.
    """
    if block is None:
        return
    if not isinstance(block, Mapping):
        raise ValueError(f"option block {where!r} must be a mapping, got {type(block).__name__}")
    accepted = tuple(accepted)
    unknown = [key for key in block if key not in accepted]
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), accepted, n=1, cutoff=0.6)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ValueError(
        f"unknown option key(s) in {where}: {', '.join(hints)}; accepted keys: {', '.join(accepted)}"
    )
