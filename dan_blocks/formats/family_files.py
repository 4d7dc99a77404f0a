"""One entry point for the blind-SR family's release files (IKC, DCLS, DASR): `load_family_release` recognises
the layout and loads it with its format module (`ikc_files`, `dcls_files`, `dasr_files`).

`dan_blocks.load_model` calls it before its DAN-release branch (DCLS's files also use ``Restorer.*`` /
``Estimator.*`` keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

__all__ = ["family_release_kind", "load_family_release"]


def family_release_kind(state: Mapping[str, Any]) -> str | None:
    """``"dasr"``, ``"dcls"``, ``"ikc_sftmd"``, ``"ikc_predictor"``, ``"ikc_corrector"`` or None."""
    from .dasr_files import is_dasr_release
    from .dcls_files import is_dcls_release
    from .ikc_files import ikc_release_kind

    if is_dasr_release(state):
        return "dasr"
    if is_dcls_release(state):
        return "dcls"
    return ikc_release_kind(state)


def load_family_release(state: Mapping[str, Tensor], where: str, overrides: Mapping[str, Any]) -> nn.Module | None:
    """The network of an IKC, DCLS or DASR release file (sizes read off its tensors, strict loading), or None
    when ``state`` is none of their layouts.

    ``overrides``: DASR takes ``input_range``; IKC's and DCLS's files take none.

    Raises:
        ValueError: an override the file's model does not take (named).
    """
    kind = family_release_kind(state)
    if kind is None:
        return None
    accepted: tuple[str, ...] = ("input_range",) if kind == "dasr" else ()
    unused = [k for k in overrides if k not in accepted]
    if unused:
        raise ValueError(f"{where} (a {kind} release file; its sizes are read off the tensors): cannot apply "
                         f"{', '.join(unused)}; accepted overrides here: {', '.join(accepted) or 'none'}")
    if kind == "dasr":
        from .dasr_files import load_dasr_checkpoint

        return load_dasr_checkpoint(state, where, **overrides)
    if kind == "dcls":
        from .dcls_files import load_dcls_checkpoint

        return load_dcls_checkpoint(state, where)
    from .ikc_files import load_ikc_checkpoint

    return load_ikc_checkpoint(state, where)
