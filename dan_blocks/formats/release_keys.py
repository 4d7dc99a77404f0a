"""Renaming a release file's keys into a dan-blocks network's, with the keys outside the layout named."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import Tensor

from ..utils import CheckpointMismatchError
from ..utils.state_record import is_record_key

__all__ = ["rename_release_keys"]


def rename_release_keys(
    state: Mapping[str, Tensor],
    rename: Callable[[str], str],
    where: str,
    layout: str,
    skip: tuple[str, ...] = (),
) -> dict[str, Tensor]:
    """``state`` with every key through ``rename`` (which raises ``KeyError`` for a key outside the layout); the
    dan-blocks record and keys starting with ``skip`` are dropped.

    Raises:
        CheckpointMismatchError: keys outside the layout, named (the first six) with ``layout`` describing it.
    """
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if is_record_key(key) or (skip and key.startswith(skip)):
            continue
        try:
            out[rename(key)] = value
        except KeyError:
            unknown.append(key)
    if unknown:
        raise CheckpointMismatchError(
            f"{where}: entries outside {layout}: {', '.join(unknown[:6])}{' ...' if len(unknown) > 6 else ''}"
        )
    return out
