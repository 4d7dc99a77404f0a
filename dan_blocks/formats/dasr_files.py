"""DASR's released model files (``experiment/blindsr_x{2,3,4}_bicubic_{iso,aniso}/model/model_600.pt``): layout
detection, key mapping, sizes read off the tensors, strict loading into `dan_blocks.archs.DASR`.

The release saves ``torch.save(state_dict)`` of its whole BlindSR with every key containing ``E.encoder_k`` or
``queue`` deleted: the generator ``G.*`` and the query encoder ``E.encoder_q.*`` (BatchNorm running statistics
included), 471 entries at x4, 469 at x2/x3. A full training state (with the key encoder and the queue) also loads:
those entries, `DASR_IGNORED`, are not used at test time and are ignored (the list is exactly that; anything else
missing or unexpected is an error naming it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ..archs.dasr_arch import DASR
from ..utils import CheckpointMismatchError, load_state_strict
from ..utils.state_record import is_record_key
from .release_keys import rename_release_keys

__all__ = ["DASR_IGNORED", "dasr_ignored_keys", "from_dasr_state_dict", "infer_dasr_config", "is_dasr_release",
           "load_dasr_checkpoint", "to_dasr_state_dict"]

#: release entries a test-time model does not hold: the momentum key encoder and the negative queue (MoCo)
DASR_IGNORED = ("E.encoder_k.", "E.queue", "E.queue_ptr")

_ENC_Q = "E.encoder_q."


def is_dasr_release(state: Mapping[str, Any]) -> bool:
    """Whether ``state`` has DASR's release layout (``G.*`` and ``E.encoder_q.*``)."""
    keys = [k for k in state if isinstance(k, str)]
    return any(k.startswith("G.head.0.") for k in keys) and any(k.startswith(_ENC_Q) for k in keys)


def dasr_ignored_keys(state: Mapping[str, Any]) -> list[str]:
    """The entries of ``state`` that `load_dasr_checkpoint` ignores (`DASR_IGNORED`)."""
    return [k for k in state if isinstance(k, str) and k.startswith(DASR_IGNORED)]


def _from_key(key: str) -> str:
    if key.startswith("G."):
        return "restorer." + key[2:]
    if key.startswith(_ENC_Q + "E."):
        return "estimator.body." + key[len(_ENC_Q) + 2:]
    if key.startswith(_ENC_Q + "mlp."):
        return "estimator." + key[len(_ENC_Q):]
    raise KeyError(key)


def _to_key(key: str) -> str:
    if key.startswith("restorer."):
        return "G." + key[len("restorer."):]
    if key.startswith("estimator.body."):
        return _ENC_Q + "E." + key[len("estimator.body."):]
    if key.startswith("estimator.mlp."):
        return _ENC_Q + key[len("estimator."):]
    raise KeyError(key)


def from_dasr_state_dict(state: Mapping[str, Tensor], where: str = "the DASR file") -> dict[str, Tensor]:
    """The release's keys -> `DASR`'s (``G.`` -> ``restorer.``, ``E.encoder_q.E.`` -> ``estimator.body.``,
    ``E.encoder_q.mlp.`` -> ``estimator.mlp.``); `DASR_IGNORED` entries dropped.

    Raises:
        CheckpointMismatchError: an entry of neither kind (named).
    """
    return rename_release_keys(state, _from_key, where, "DASR's layout (G.*, E.encoder_q.*)", DASR_IGNORED)


def to_dasr_state_dict(model: DASR) -> dict[str, Tensor]:
    """``model``'s weights in the release's layout (what its ``model_600.pt`` holds: 471 entries at x4)."""
    return {_to_key(k): v for k, v in model.state_dict().items() if not is_record_key(k)}


def infer_dasr_config(state: Mapping[str, Tensor], where: str = "the DASR file") -> dict[str, Any]:
    """`DASR`'s constructor sizes read off a release-layout state dict (scale, nf, rep_nf, n_groups, n_blocks,
    ksize, reduction, enc_nf)."""
    try:
        head = state["G.head.0.weight"]
        nf, ksize = int(head.shape[0]), int(head.shape[-1])
        rep_nf = int(state["G.compress.0.weight"].shape[0])
        enc_nf = int(state[_ENC_Q + "E.0.weight"].shape[0])
        reduction = nf // int(state["G.body.0.body.0.da_conv1.ca.conv_du.0.weight"].shape[0])
        groups = {int(m.group(1)) for k in state if (m := re.match(r"G\.body\.(\d+)\.body\.", k))}
        blocks = {int(m.group(1)) for k in state if (m := re.match(r"G\.body\.0\.body\.(\d+)\.conv1\.", k))}
        first = state["G.tail.0.0.weight"]
    except KeyError as err:
        raise CheckpointMismatchError(f"{where}: not a DASR release file, it lacks {err.args[0]!r}") from None
    stages = len({k for k in state if re.match(r"G\.tail\.0\.\d+\.weight$", k)})
    ratio = int(first.shape[0]) // nf
    if ratio == 9 and stages == 1:
        scale = 3
    elif ratio == 4:
        scale = 2 ** stages
    else:
        raise CheckpointMismatchError(f"{where}: G.tail.0.0.weight has shape {tuple(first.shape)}, expected "
                                      f"({4 * nf} or {9 * nf}, {nf}, 3, 3)")
    return {"scale": scale, "nf": nf, "rep_nf": rep_nf, "n_groups": len(groups), "n_blocks": len(blocks),
            "ksize": ksize, "reduction": reduction, "enc_nf": enc_nf}


def load_dasr_checkpoint(
    state: Mapping[str, Tensor], where: str = "the DASR file", input_range: float = 1.0
) -> DASR:
    """A `DASR` built from the sizes of a release-layout state dict, its weights loaded strictly (ignoring only
    `DASR_IGNORED`), in eval mode. ``input_range``: see `DASR` (1.0: [0, 1] images; 255: the release's scale).

    Raises:
        CheckpointMismatchError: not DASR's layout, or keys / shapes that do not fit (listed).
    """
    cfg = infer_dasr_config(state, where)
    model = DASR(**cfg, input_range=input_range)
    load_state_strict(model, from_dasr_state_dict(state, where), where)
    return model.eval()
