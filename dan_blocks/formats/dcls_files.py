"""DCLS's released checkpoints (megvii-research/DCLS-SR: ``DCLSx{2,3,4}_setting1.pth``, ``DCLSx{2,4}_setting2.pth``):
layout detection, sizes read off the tensors (scale, kernel size, filter chain), strict loading into
`dan_blocks.archs.DCLS`.

Layout (BasicSR's save_network: a plain state dict): ``Restorer.*`` (``conv_first``, ``feature_block``, ``head1``,
``head2`` = the CLS deconvolution, ``body.{g}.body.{b}``, ``fusion``, ``upscale``) and ``Estimator.*`` (``head``,
``body.0``, ``tail``, ``dec.{i}``). The library's module names are the same in lower case.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ..archs.dcls_arch import DCLS
from ..utils import CheckpointMismatchError, load_state_strict
from ..utils.state_record import is_record_key
from .release_keys import rename_release_keys

__all__ = ["from_dcls_state_dict", "infer_dcls_config", "is_dcls_release", "load_dcls_checkpoint",
           "to_dcls_state_dict"]

_PREFIX = {"Restorer.": "restorer.", "Estimator.": "estimator."}
_BACK = {v: k for k, v in _PREFIX.items()}


def is_dcls_release(state: Mapping[str, Any]) -> bool:
    """Whether ``state`` has DCLS's layout (its DDLK decoder and CLS head)."""
    return "Estimator.dec.0.weight" in state and "Restorer.head2.reduce_feature.weight" in state


def _swap(key: str, table: Mapping[str, str]) -> str:
    for old, new in table.items():
        if key.startswith(old):
            return new + key[len(old):]
    raise KeyError(key)


def from_dcls_state_dict(state: Mapping[str, Tensor], where: str = "the DCLS file") -> dict[str, Tensor]:
    """``Restorer.`` / ``Estimator.`` -> ``restorer.`` / ``estimator.``; any other entry is an error naming it."""
    return rename_release_keys(state, lambda key: _swap(key, _PREFIX), where, "DCLS's layout (Restorer.*, Estimator.*)")


def to_dcls_state_dict(model: DCLS) -> dict[str, Tensor]:
    """``model``'s weights in the release's layout."""
    return {_swap(k, _BACK): v for k, v in model.state_dict().items() if not is_record_key(k)}


def infer_dcls_config(state: Mapping[str, Tensor], where: str = "the DCLS file") -> dict[str, Any]:
    """`DCLS`'s constructor sizes read off a release-layout state dict."""
    try:
        first = state["Restorer.conv_first.weight"]
        nf, in_nc = int(first.shape[0]), int(first.shape[1])
        nf2 = int(state["Restorer.head1.weight"].shape[0])
        latent = int(state["Estimator.dec.0.weight"].shape[1])
        up0 = state.get("Restorer.upscale.0.weight")
    except KeyError as err:
        raise CheckpointMismatchError(f"{where}: not a DCLS release file, it lacks {err.args[0]!r}") from None
    groups = {int(m.group(1)) for k in state if (m := re.match(r"Restorer\.body\.(\d+)\.", k))}
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"Restorer\.body\.0\.body\.(\d+)\.", k))}
    decs = sorted(int(m.group(1)) for k in state if (m := re.match(r"Estimator\.dec\.(\d+)\.weight$", k)))
    if "Restorer.upscale.4.weight" in state:
        scale = 4
    elif up0 is None:
        scale = 1
    else:
        ratio = int(up0.shape[0]) // nf
        scale = math.isqrt(ratio)
        if scale * scale != ratio:
            raise CheckpointMismatchError(f"{where}: Restorer.upscale.0.weight has shape {tuple(up0.shape)}, "
                                          f"not ({nf} s^2, {nf}, 3, 3)")
    structures = []
    for position, index in enumerate(decs):
        rows = int(state[f"Estimator.dec.{index}.weight"].shape[0])
        cin = in_nc if position in (0, len(decs) - 1) else 16
        size = math.isqrt(rows // (16 * cin))
        if 16 * cin * size * size != rows:
            raise CheckpointMismatchError(f"{where}: Estimator.dec.{index}.weight has {rows} rows, not "
                                          f"16 x {cin} x f^2 for a filter size f")
        structures.append(size)
    kernel_size = 1 + sum(f - 1 for f in structures)
    return {"in_nc": in_nc, "nf": nf, "nb": len(blocks), "ng": len(groups), "scale": scale,
            "reduction": nf // nf2, "kernel_size": kernel_size, "filter_structures": structures, "latent": latent}


def load_dcls_checkpoint(state: Mapping[str, Tensor], where: str = "the DCLS file") -> DCLS:
    """A `DCLS` built from the sizes of a release checkpoint (``residual="double"``, the release's groups), its
    weights loaded strictly, in eval mode.

    Raises:
        CheckpointMismatchError: not DCLS's layout, or keys / shapes that do not fit (listed).
    """
    model = DCLS(**infer_dcls_config(state, where), residual="double")
    load_state_strict(model, from_dcls_state_dict(state, where), where)
    return model.eval()
