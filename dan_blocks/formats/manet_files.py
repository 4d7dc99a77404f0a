"""MANet's released model files (JingyunLiang/MANet): layout detection, key mapping, config inference and
strict loading into `MANetEstimator` (stage 1) and `MANetRRDB` (stage 3).

MANet's layout (a plain state dict): the estimator under ``kernel_estimation.`` (``m_head``, ``m_down1``,
``m_body``, ``m_up1``, ``m_tail``; MAConv groups ``fc{i}`` / ``conv{i}`` inside each block's ``res``; with one
block per level the body block is stored unwrapped as ``m_body.res.*``), and for stage 3 ``pca_matrix``
(1, k*k, C, 1, 1), ``conv_first``, ``RRDB_trunk.{i}.{SFT,RDB1,RDB2,RDB3}``, ``trunk_conv``, ``upsampler.0``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor

from ..archs.manet_arch import MANetEstimator
from ..archs.manet_rrdb_arch import MANetRRDB
from ..layers import PCAEncoder
from ..utils import CheckpointMismatchError, load_state_strict, read_checkpoint, state_dict_diff
from ..utils.state_record import is_record_key

__all__ = [
    "MANET_PAD_MULTIPLE",
    "from_manet_state_dict",
    "infer_manet_config",
    "load_manet_checkpoint",
    "manet_release_kind",
    "to_manet_state_dict",
]

#: MANet's estimator pads its input to a multiple of 8 by replication; its weights are used that way
MANET_PAD_MULTIPLE = 8
_EST = "kernel_estimation."
_TOP = {"head": "m_head", "down": "m_down1", "body": "m_body", "up": "m_up1", "tail": "m_tail"}
_TOP_BACK = {v: k for k, v in _TOP.items()}
_SFT = {"scale.0": "mul_conv1", "scale.2": "mul_conv2", "shift.0": "add_conv1", "shift.2": "add_conv2"}
_SFT_BACK = {v: k for k, v in _SFT.items()}


def manet_release_kind(state: Mapping[str, Any]) -> Literal["stage1", "stage3"] | None:
    """``"stage1"`` (estimator only), ``"stage3"`` (estimator + RRDB-SFT restorer) or None (not MANet's layout).

    Raises:
        TypeError: ``state`` is not a mapping.
    """
    _check_mapping(state, "manet_release_kind")
    keys = [k for k in state if isinstance(k, str)]
    if not any(k.startswith(_EST + "m_head.") for k in keys):
        return None
    return "stage3" if any(k.startswith(("RRDB_trunk.", "conv_first.")) for k in keys) else "stage1"


def _check_mapping(state: Any, caller: str) -> None:
    """A TypeError naming ``caller`` unless ``state`` is a mapping (a state dict: tensor name -> tensor)."""
    if not isinstance(state, Mapping):
        raise TypeError(
            f"{caller}: expected a state dict (a mapping of tensor names to tensors), got {type(state).__name__}"
        )


def _label(kind: str | None, where: str | None) -> str:
    """How errors name the file: ``"MANet stage3 file PATH"`` (``"MANet model file"`` without kind / where)."""
    return f"MANet {kind or 'model'} file" + (f" {where}" if where else "")


_PCA_SHAPE = "(1, k*k, C, 1, 1) (MANet's layout) or (1, k*k, C), for an odd kernel size k"


def _pca_matrix(value: Any, label: str) -> Tensor:
    """MANet's ``pca_matrix`` as the (k*k, C) matrix it holds, checked (else an error naming the tensor, its shape
    and the expected one)."""
    if not isinstance(value, Tensor):
        raise CheckpointMismatchError(
            f"{label}: 'pca_matrix' is a {type(value).__name__}, expected a tensor of shape {_PCA_SHAPE}"
        )
    shape = tuple(int(s) for s in value.shape)
    layout = (len(shape) == 5 and shape[0] == 1 and shape[3:] == (1, 1)) or (len(shape) == 3 and shape[0] == 1)
    rows = shape[1] if layout else 0
    size = math.isqrt(rows)
    if not layout or size * size != rows or size % 2 == 0 or shape[2] < 1:
        why = f"; its {rows} rows are not k*k for an odd k" if layout and shape[2] >= 1 else ""
        raise CheckpointMismatchError(
            f"{label}: tensor 'pca_matrix' has shape {shape}, expected {_PCA_SHAPE}{why} (a damaged file, or not "
            "MANet's?)"
        )
    if not value.is_floating_point():
        raise CheckpointMismatchError(f"{label}: tensor 'pca_matrix' has dtype {value.dtype}, expected a float tensor")
    return value.reshape(rows, shape[2])


# -- key mapping ------------------------------------------------------------------------------------
def _estimator_to_manet(key: str, num_blocks: int) -> str:
    top, _, rest = key.partition(".")
    if top not in _TOP:
        raise KeyError(f"not a MANetEstimator key: {key!r}")
    rest = re.sub(r"(^|\.)body\.(\d+)\.(fc|conv)\.(\d+)\.", r"\1res.\2.\3\4.", rest)
    if top == "body" and num_blocks == 1:  # MANet's sequential() stores a single module unwrapped
        rest = rest.removeprefix("0.")
    return f"{_EST}{_TOP[top]}.{rest}"


def _estimator_from_manet(key: str) -> str:
    top, _, rest = key.removeprefix(_EST).partition(".")
    if top not in _TOP_BACK:
        raise KeyError(f"not a MANet estimator key: {key!r}")
    if top == "m_body" and rest.startswith("res."):
        rest = "0." + rest
    rest = re.sub(r"(^|\.)res\.(\d+)\.(fc|conv)(\d+)\.", r"\1body.\2.\3.\4.", rest)
    return f"{_TOP_BACK[top]}.{rest}"


def _restorer_to_manet(key: str) -> str:
    key = re.sub(r"^trunk\.(\d+)\.", r"RRDB_trunk.\1.", key)
    key = re.sub(r"\.rdb(\d)\.", r".RDB\1.", key)
    match = re.search(r"\.sft\.((?:scale|shift)\.\d)\.", key)
    if match:
        key = key.replace(f".sft.{match[1]}.", f".SFT.{_SFT[match[1]]}.")
    return key


def _restorer_from_manet(key: str) -> str:
    key = re.sub(r"^RRDB_trunk\.(\d+)\.", r"trunk.\1.", key)
    key = re.sub(r"\.RDB(\d)\.", r".rdb\1.", key)
    match = re.search(r"\.SFT\.((?:mul|add)_conv\d)\.", key)
    if match:
        key = key.replace(f".SFT.{match[1]}.", f".sft.{_SFT_BACK[match[1]]}.")
    return key


def _count(state: Mapping[str, Any], prefix: str) -> int:
    found = {int(m[1]) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(found) + 1 if found else 0


def from_manet_state_dict(state: Mapping[str, Tensor], *, where: str | None = None) -> dict[str, Tensor]:
    """MANet's layout -> dan-blocks': stage 1 -> `MANetEstimator` keys; stage 3 -> `MANetRRDB` keys (the
    estimator under ``estimator.``, the restorer under ``restorer.``, the PCA as ``pca.matrix`` (k*k, C) with a
    zero ``pca.mean``, and the ``init_kernel`` / ``init_code`` buffers computed from the matrix).

    Args:
        state: a state dict in MANet's layout.
        where: the file it was read from, named in errors.

    Raises:
        TypeError: ``state`` is not a mapping.
        CheckpointMismatchError: not MANet's layout, an entry that is not a tensor, a key outside MANet's
            layout, or a ``pca_matrix`` of another shape than (1, k*k, C, 1, 1) / (1, k*k, C).
    """
    _check_mapping(state, "from_manet_state_dict")
    kind = manet_release_kind(state)
    label = _label(kind, where)
    if kind is None:
        raise CheckpointMismatchError(f"{label}: not a MANet model file: no 'kernel_estimation.m_head.*' tensors")
    prefix = "" if kind == "stage1" else "estimator."
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise CheckpointMismatchError(f"{label}: key {key!r} is a {type(key).__name__}, expected a tensor name")
        if not isinstance(value, Tensor) and not (kind == "stage3" and key == "pca_matrix"):
            raise CheckpointMismatchError(f"{label}: entry {key!r} is a {type(value).__name__}, expected a tensor")
        if key.startswith(_EST):
            try:
                out[prefix + _estimator_from_manet(key)] = value
            except KeyError:
                raise CheckpointMismatchError(
                    f"{label}: unexpected tensor {key!r} (MANet's estimator keys start with "
                    f"{', '.join(_EST + m + '.' for m in _TOP_BACK)})"
                ) from None
        elif kind == "stage3" and key == "pca_matrix":
            matrix = _pca_matrix(value, label)
            out["pca.matrix"] = matrix
            out["pca.mean"] = torch.zeros(matrix.shape[0], dtype=matrix.dtype)
            size = math.isqrt(matrix.shape[0])
            dirac = torch.zeros(1, size, size, dtype=matrix.dtype)
            dirac[:, size // 2, size // 2] = 1
            out["init_kernel"] = dirac
            out["init_code"] = dirac.reshape(1, -1) @ matrix
        elif kind == "stage3":
            out["restorer." + _restorer_from_manet(key)] = value
        else:
            raise CheckpointMismatchError(
                f"{label}: unexpected tensor {key!r} (a stage-1 file holds only 'kernel_estimation.*' tensors)"
            )
    return out


def to_manet_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """dan-blocks' layout of a `MANetEstimator` or `MANetRRDB` -> MANet's (loadable by MANet's own code,
    ``MANet_s1`` / ``MANet_s3``)."""
    stage3 = any(k.startswith("estimator.") for k in state)
    est_prefix = "estimator." if stage3 else ""
    est_keys = [k.removeprefix(est_prefix) for k in state if k.startswith(est_prefix)]
    num_blocks = _count(dict.fromkeys(est_keys), "body.")
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith(est_prefix) and (stage3 or key.split(".")[0] in _TOP):
            out[_estimator_to_manet(key.removeprefix(est_prefix), num_blocks)] = value
        elif key == "pca.matrix":
            out["pca_matrix"] = value.reshape(1, *value.shape, 1, 1)
        elif key.startswith("restorer."):
            out[_restorer_to_manet(key.removeprefix("restorer."))] = value
        elif key not in ("pca.mean", "init_kernel", "init_code") and not is_record_key(key):
            raise KeyError(f"not a MANetEstimator / MANetRRDB key: {key!r}")
    return out


# -- config -----------------------------------------------------------------------------------------
def _need(
    state: Mapping[str, Tensor], key: str, dims: tuple[int, ...] = (4,), label: str = "MANet model file"
) -> Tensor:
    """``state[key]``, which the config is read from: present and with ``dims`` dimensions (else an error naming
    ``label``, the file, and this tensor)."""
    if key not in state:
        raise CheckpointMismatchError(f"{label}: missing tensor {key!r} (a damaged or partial file?)")
    value = state[key]
    expected = f"a non-empty {' or '.join(f'{d}-d' for d in dims)} tensor"
    if not isinstance(value, Tensor):
        raise CheckpointMismatchError(f"{label}: {key!r} is a {type(value).__name__}, expected {expected}")
    if value.dim() not in dims or min(value.shape, default=0) < 1:
        raise CheckpointMismatchError(
            f"{label}: tensor {key!r} has shape {tuple(value.shape)}, expected {expected} (a damaged file, or not "
            "MANet's?)"
        )
    return value


def infer_manet_config(state: Mapping[str, Tensor], *, where: str | None = None) -> dict[str, Any]:
    """The constructor options of the model a MANet-layout state dict holds, read off its tensors:
    ``{"kind": "stage1" | "stage3", **options}`` (`MANetEstimator` options for stage 1, `MANetRRDB` for 3).

    Args:
        state: a state dict in MANet's layout.
        where: the file it was read from, named in errors.

    Raises:
        TypeError: ``state`` is not a mapping.
        CheckpointMismatchError: not MANet's layout, or a tensor the sizes are read from is missing or malformed.
    """
    _check_mapping(state, "infer_manet_config")
    kind = manet_release_kind(state)
    label = _label(kind, where)
    if kind is None:
        raise CheckpointMismatchError(f"{label}: not a MANet model file: no 'kernel_estimation.m_head.*' tensors")
    head = _need(state, _EST + "m_head.weight", label=label)
    nf, in_nc = int(head.shape[0]), int(head.shape[1])
    taps = int(_need(state, _EST + "m_tail.weight", label=label).shape[0])
    size = math.isqrt(taps)
    if size * size != taps:
        raise CheckpointMismatchError(
            f"{label}: tensor '{_EST}m_tail.weight' gives {taps} channels, expected k*k kernel taps"
        )
    num_blocks = _count(state, _EST + "m_down1.") - 1  # the blocks, then the strided conv
    block = f"{_EST}m_down1.0.res.0."
    split = sum(1 for k in state if re.fullmatch(re.escape(block) + r"fc\d+\.0\.weight", k))
    fc = _need(state, block + "fc0.0.weight", label=label)
    reduction = int(fc.shape[1]) // max(1, int(fc.shape[0]))
    estimator = {"in_nc": in_nc, "kernel_size": size, "split": split, "reduction": reduction}
    if num_blocks < 1 or split < 2:
        raise CheckpointMismatchError(
            f"{label}: estimator layout not understood ({num_blocks} blocks per level under '{_EST}m_down1.', "
            f"{split} MAConv groups under '{block}fc*')"
        )
    if kind == "stage1":
        return {"kind": kind, **estimator, "nf": nf, "num_blocks": num_blocks, "use_sr": False,
                "pad_multiple": MANET_PAD_MULTIPLE}
    first = _need(state, "conv_first.weight", label=label)
    rest_nf = int(first.shape[0])
    if "pca_matrix" not in state:
        raise CheckpointMismatchError(f"{label}: missing tensor 'pca_matrix' (a damaged or partial file?)")
    matrix = _pca_matrix(state["pca_matrix"], label)
    if matrix.shape[0] != taps:
        raise CheckpointMismatchError(
            f"{label}: tensor 'pca_matrix' has {matrix.shape[0]} rows ({math.isqrt(matrix.shape[0])}x"
            f"{math.isqrt(matrix.shape[0])} kernels), but '{_EST}m_tail.weight' gives {taps} kernel taps: "
            f"expected shape (1, {taps}, C, 1, 1)"
        )
    up = int(_need(state, "upsampler.0.weight", label=label).shape[0])
    scale = math.isqrt(up // in_nc)
    if scale < 1 or scale * scale * in_nc != up:
        raise CheckpointMismatchError(
            f"{label}: tensor 'upsampler.0.weight' gives {up} channels, expected {in_nc} * scale^2"
        )
    return {
        "kind": kind,
        "in_nc": in_nc,
        "out_nc": in_nc,
        "nf": rest_nf,
        "nb": _count(state, "RRDB_trunk."),
        "gc": int(_need(state, "RRDB_trunk.0.RDB1.conv1.weight", label=label).shape[0]),
        "scale": scale,
        "kernel_size": size,
        "code_length": int(matrix.shape[1]),
        "manet_nf": nf,
        "manet_nb": num_blocks,
        "split": split,
        "pad_multiple": MANET_PAD_MULTIPLE,
    }


def load_manet_checkpoint(
    source: str | os.PathLike[str] | Mapping[str, Any],
    map_location: Any = "cpu",
    *,
    where: str | None = None,
    **overrides: Any,
) -> MANetEstimator | MANetRRDB:
    """MANet's ``stage1_MANet_x4.pth`` as an LR-only `MANetEstimator` (call it as ``estimator(None, lr)``:
    per-pixel kernels (B, k*k, h, w)), or ``stage3_MANet+RRDB_x4.pth`` as a `MANetRRDB`; sizes read off the
    tensors, loaded strictly (``weights_only=True``), in eval mode. ``overrides`` replace inferred options that
    the weights do not fix (``pad_multiple``; ``loop`` of stage 3); ``where`` names an already loaded dict's file
    in errors. Missing / unexpected keys and shape differences are listed as MANet's layout spells them (the
    names in the file).

    Raises:
        CheckpointMismatchError: not MANet's layout, or tensors missing / unexpected / of other shapes (listed),
            or a malformed ``pca_matrix`` (named, with its shape and the expected one).
        ValueError: an override that is not such an option, or a value of it the model refuses.
    """
    if where is None:
        where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the given state dict"
    state = read_checkpoint(source, map_location=map_location)
    cfg = infer_manet_config(state, where=where)
    kind = cfg.pop("kind")
    label = _label(kind, where)
    allowed = ("pad_multiple",) if kind == "stage1" else ("pad_multiple", "loop")
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(
            f"{label}: cannot set {unknown} (read off the weights, or not an option of this model); "
            f"accepted overrides: {list(allowed)}"
        )
    cfg.update(overrides)
    model: MANetEstimator | MANetRRDB
    try:
        if kind == "stage1":
            model = MANetEstimator(**cfg)
        else:
            matrix = _pca_matrix(state["pca_matrix"], label)
            pca = PCAEncoder.from_matrix(matrix.detach().float().cpu(), metadata={"source": "MANet release"})
            model = MANetRRDB(**cfg, pca=pca)
    except CheckpointMismatchError:
        raise
    except (TypeError, ValueError) as err:
        cls = "MANetEstimator" if kind == "stage1" else "MANetRRDB"
        given = f" (overrides {dict(overrides)})" if overrides else ""
        raise ValueError(f"{label}: cannot build the {cls} its tensors describe{given}: {err}") from err
    expected = to_manet_state_dict(model.state_dict())  # compared in the file's own (MANet) names
    expected.pop("pca_matrix", None)  # checked above, in either of its accepted shapes
    lines = state_dict_diff(expected, {k: v for k, v in state.items() if k != "pca_matrix"})
    if lines:
        raise CheckpointMismatchError(
            f"{label} does not match {type(model).__name__} (strict loading; keys as MANet's layout names them):\n  "
            + "\n  ".join(lines)
        )
    load_state_strict(model, from_manet_state_dict(state, where=where), label)
    return model.eval()
