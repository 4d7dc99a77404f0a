"""Option-key checking: a misspelled key names itself, the accepted keys and a did-you-mean."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["OptionKeyError", "check_keys", "did_you_mean"]


def did_you_mean(name: object, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate (case-insensitive), or an empty string."""
    by_lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


class OptionKeyError(ValueError, KeyError):
    """An option block holds a key its reader does not accept (a ``ValueError`` and a ``KeyError``)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def check_keys(block: Mapping[str, Any] | None, accepted: Iterable[str], where: str) -> None:
    """Raise `OptionKeyError` naming every unknown key of ``block``, the accepted keys and close matches.

    Args:
        block: the option block (``None``: nothing to check).
        accepted: the keys its reader accepts.
        where: the block's name in messages, e.g. ``"train (DANModel)"`` or ``"path"``.

    Raises:
        OptionKeyError: an unknown key, or ``block`` is not a mapping.
    """
    if block is None:
        return
    if not isinstance(block, Mapping):
        raise OptionKeyError(f"option block {where!r} must be a mapping of keys to values, got {type(block).__name__}")
    accepted = tuple(accepted)
    unknown = [key for key in block if key not in accepted]
    if not unknown:
        return
    hints = [f"{key!r}{did_you_mean(key, accepted)}" for key in unknown]
    raise OptionKeyError(
        f"unknown option key(s) in {where}: {', '.join(hints)}; accepted keys: {', '.join(sorted(accepted))}"
    )
