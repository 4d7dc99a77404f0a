"""The release's checkpoints (greatlog/DAN): key mapping, config inference, strict loading, readable diffs.

Release layout (plain dict of tensors): ``Restorer.*``, ``Estimator.*`` and the buffers ``encoder``
(1, k*k, C), ``init_kernel`` (1, k, k), ``init_ker_map`` (1, C). dan-blocks layout: ``restorer.*``,
``estimator.*``, ``pca.matrix`` (k*k, C), ``pca.mean`` (k*k,) (zeros for release weights), ``init_kernel``,
``init_code``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..archs.dan_arch import DAN
from ..archs.dan_v1_arch import RestorerV1
from ..archs.dan_v2_arch import RestorerV2
from ..archs.presets import DANv1, DANv2
from ..layers import PCAEncoder
from ..utils import CheckpointMismatchError, read_checkpoint
from ..utils.state_record import is_record_key

__all__ = [
    "CheckpointMismatchError",
    "from_release_state_dict",
    "infer_release_config",
    "load_official_checkpoint",
    "load_official_weights",
    "read_state_dict",
    "release_key",
    "release_version",
    "to_release_state_dict",
]

_PREFIXES = (("restorer.", "Restorer."), ("estimator.", "Estimator."))
_BUFFERS = {"pca.matrix": "encoder", "init_kernel": "init_kernel", "init_code": "init_ker_map"}


# -- reading ----------------------------------------------------------------------------------------
def read_state_dict(
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, Any], map_location: Any = "cpu"
) -> dict[str, Tensor]:
    """Load (``weights_only=True``) and unwrap a checkpoint: ``{"params": ...}`` / ``params_ema`` /
    ``state_dict`` wrappers and a ``module.`` prefix (DataParallel) are removed."""
    state = read_checkpoint(path_or_state_dict, map_location=map_location)
    if any(
        k.startswith(("restorer.", "estimator.")) for k in state
    ):  # dan-blocks layout: back to the release's
        state = to_release_state_dict(state)
    return state


# -- key mapping ------------------------------------------------------------------------------------
def release_key(key: str) -> str | None:
    """dan-blocks key -> release key (``None`` for ``pca.mean``, which the release does not store)."""
    for ours, theirs in _PREFIXES:
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    if key == "pca.mean" or is_record_key(key):  # the options record is dan-blocks' own
        return None
    return _BUFFERS.get(key, key)


def to_release_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """dan-blocks layout -> release layout (``pca.matrix`` (k*k, C) -> ``encoder`` (1, k*k, C))."""
    mean = state.get("pca.mean")
    if mean is not None and bool(mean.abs().sum() != 0):
        raise ValueError("a centred PCA (non-zero pca.mean) cannot be written in the release's format")
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        new = release_key(key)
        if new is not None:
            out[new] = value[None] if key == "pca.matrix" else value
    return out


def from_release_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Release layout -> dan-blocks layout (adds a zero ``pca.mean``: the release encodes without a mean)."""
    inverse = {v: k for k, v in _BUFFERS.items()}
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key in inverse:
            out[inverse[key]] = value[0] if key == "encoder" else value
            continue
        for ours, theirs in _PREFIXES:
            if key.startswith(theirs):
                out[ours + key[len(theirs) :]] = value
                break
        else:
            out[key] = value
    if "pca.matrix" in out:
        out["pca.mean"] = torch.zeros(out["pca.matrix"].shape[0], dtype=out["pca.matrix"].dtype)
    return out


# -- inference --------------------------------------------------------------------------------------
def _count(state: Mapping[str, Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    return max(found) + 1 if found else 0


def _need(state: Mapping[str, Tensor], key: str, what: str, ndim: int = 4) -> Tensor:
    """The tensor the ``what`` is read from; missing or malformed (not ``ndim``-d, an empty side) is named."""
    if key not in state:
        raise CheckpointMismatchError(f"cannot infer the {what}: the checkpoint has no {key!r}")
    tensor = state[key]
    if tensor.dim() != ndim or 0 in tensor.shape:
        raise CheckpointMismatchError(
            f"cannot infer the {what}: {key!r} has shape {tuple(tensor.shape)}, expected a {ndim}-d "
            f"{'convolution weight' if ndim == 4 else 'tensor'} (is the file damaged?)"
        )
    return tensor


def _head(state: Mapping[str, Tensor], version: int) -> Tensor:
    """The restorer's first conv weight (width and input channels), checked against its bias."""
    key = "Restorer.head1.weight" if version == 2 else "Restorer.head.weight"
    head = _need(state, key, "width")
    bias = state.get(key.replace(".weight", ".bias"))
    if bias is not None and tuple(bias.shape) != (head.shape[0],):
        raise CheckpointMismatchError(
            f"{key!r} {tuple(head.shape)} and its bias {tuple(bias.shape)} disagree on the width: one of them is "
            "damaged"
        )
    return head


def release_version(state: Mapping[str, Tensor]) -> int:
    """1 or 2, from the restorer's head (``Restorer.head`` in v1, ``Restorer.head1`` in v2)."""
    if "Restorer.head1.weight" in state:
        return 2
    if "Restorer.head.weight" in state:
        return 1
    sample = ", ".join(list(state)[:5])
    raise CheckpointMismatchError(
        "not a DAN release checkpoint: expected 'Restorer.head.weight' (v1) or 'Restorer.head1.weight' (v2); "
        f"first keys: {sample}"
    )


def _scale(state: Mapping[str, Tensor], nf: int) -> int:
    if "Restorer.upscale.weight" in state:
        return 1
    convs = [
        state[f"Restorer.upscale.{i}.weight"]
        for i in range(0, 2 * _count(state, "Restorer.upscale."), 2)
        if f"Restorer.upscale.{i}.weight" in state
    ]
    if len(convs) < 2:
        raise CheckpointMismatchError("cannot infer the scale: no 'Restorer.upscale.*' convolutions")
    scale = 1
    for conv in convs[:-1]:
        factor = math.isqrt(conv.shape[0] // nf)
        if factor * factor * nf != conv.shape[0]:
            raise CheckpointMismatchError(
                f"cannot infer the scale from an upscale conv of shape {tuple(conv.shape)}"
            )
        scale *= factor
    return scale


def infer_release_config(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Version and every size of a release-layout state dict (DANv1 / DANv2 keyword arguments + version)."""
    version = release_version(state)
    head = _head(state, version)
    nf, in_nc = int(head.shape[0]), int(head.shape[1])
    encoder = state.get("encoder")
    cfg: dict[str, Any] = {"version": version, "in_nc": in_nc, "nf": nf, "scale": _scale(state, nf)}
    if version == 1:
        cfg["nb"] = _count(state, "Restorer.body.")
        first = _need(state, "Restorer.body.0.body.0.weight", "code length")
        cfg["code_length"] = int(encoder.shape[-1]) if encoder is not None else int(first.shape[1]) - nf
        cfg["est_nf"] = int(_need(state, "Estimator.head_LR.weight", "estimator width").shape[0])
        cfg["est_nb"] = _count(state, "Estimator.body.")
        attention = state.get("Restorer.body.0.body.3.body.0.weight")  # channel attention squeeze nf -> nf // r
        if attention is not None and attention.dim() == 4 and attention.shape[0] > 0:
            cfg["reduction"] = nf // int(attention.shape[0])
        if encoder is not None:
            cfg["kernel_size"] = math.isqrt(encoder.shape[-2])
        elif "init_kernel" in state:
            cfg["kernel_size"] = int(state["init_kernel"].shape[-1])
        else:
            cfg["kernel_size"] = 21
    else:
        cfg["ng"] = _count(state, "Restorer.body.")
        cfg["nb"] = _count(state, "Restorer.body.0.body.")
        cfg["code_length"] = int(_need(state, "Restorer.head2.weight", "code length").shape[1])
        taps = int(_need(state, "Estimator.tail.2.weight", "kernel size").shape[0])
        cfg["kernel_size"] = math.isqrt(taps)
        cfg["est_nf"] = int(_need(state, "Estimator.head_LR.0.weight", "estimator width").shape[0])
        cfg["est_nb"] = _count(state, "Estimator.body.body.")
        cfg["est_tail_nf"] = int(_need(state, "Estimator.tail.0.weight", "estimator tail width").shape[0])
    return cfg


# -- strict diff and loading ------------------------------------------------------------------------
def _shape(shape: torch.Size | tuple[int, ...]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def _size_hint(expected: tuple[int, ...], got: tuple[int, ...]) -> str:
    if len(expected) != len(got):
        return f"expected {len(expected)} dims, got {len(got)}"
    for e, g in zip(expected, got, strict=True):
        if e != g:
            return f"expected size {e}, got {g}"
    return ""


def _model_version(model: DAN) -> int | None:
    if isinstance(model.restorer, RestorerV2):
        return 2
    if isinstance(model.restorer, RestorerV1):
        return 1
    return None


def load_official_weights(
    model: DAN, path_or_state_dict: str | os.PathLike[str] | Mapping[str, Any], map_location: Any = "cpu"
) -> DAN:
    """Load release-format (or dan-blocks-format) weights into ``model`` STRICTLY.

    Raises:
        CheckpointMismatchError: wrong DAN version, or any missing key, unexpected key or shape difference
            (all listed, with the kernel-size / code-length sizes named).
    """
    state = read_state_dict(path_or_state_dict, map_location)
    version, mine = release_version(state), _model_version(model)
    if mine is not None and version != mine:
        raise CheckpointMismatchError(
            f"the checkpoint holds DAN v{version} weights but the model is DAN v{mine} "
            f"({type(model).__name__}); build it with dan_v{version}(...) or use load_official_checkpoint(), "
            "which infers the version"
        )
    expected: dict[str, tuple[int, ...]] = {}
    for key, value in model.state_dict().items():
        new = release_key(key)
        if new is not None:
            expected[new] = (1, *value.shape) if key == "pca.matrix" else tuple(value.shape)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        (k, expected[k], tuple(state[k].shape))
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    if missing or unexpected or mismatched:
        lines = [f"checkpoint does not match {type(model).__name__} (strict loading):"]
        if mismatched:
            lines.append(f"  shape differences ({len(mismatched)}):")
            lines += [
                f"    {k}: checkpoint {_shape(g)}, model {_shape(e)} ({_size_hint(e, g)})"
                for k, e, g in mismatched
            ]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): " + ", ".join(missing))
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): " + ", ".join(unexpected))
        try:
            cfg = infer_release_config(state)
            lines.append(
                f"  the checkpoint is DAN v{cfg['version']} x{cfg['scale']} for {cfg['kernel_size']}x"
                f"{cfg['kernel_size']} kernels ({cfg['kernel_size'] ** 2} values) and {cfg['code_length']}-d "
                f"codes; the model is x{model.scale} for {model.kernel_size}x{model.kernel_size} kernels "
                f"({model.kernel_size**2} values) and {model.code_length}-d codes"
            )
        except (CheckpointMismatchError, KeyError, IndexError):
            pass
        raise CheckpointMismatchError("\n".join(lines))
    model.load_state_dict(from_release_state_dict(state), strict=True)
    return model


def load_official_checkpoint(
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, Any],
    loop: int = 4,
    map_location: Any = "cpu",
    setting: int | None = None,
) -> DAN:
    """Build the DAN a release checkpoint describes and load it strictly.

    Version, scale, kernel size, code length and block counts are inferred from the tensors; the PCA matrix
    and the initial code are the checkpoint's own buffers, so the forward reproduces the release's.

    Args:
        path_or_state_dict: a ``danv?_x?_setting?.pth`` file or its state dict (a ``{"params": ...}`` wrapper
            and a ``module.`` prefix are accepted, and so is a dan-blocks checkpoint).
        loop: iterations (4 in every released config).
        map_location: passed to ``torch.load``; the model is moved there when it names a device.
        setting: the training-kernel setting (1 or 2), which picks the mean kernel that DAN v1's codes are
            reconstructed with (release PCA matrices carry no mean); default 1 for 21x21 kernels with 10-d
            codes (the release's DANv1 x4 setting-2 file is byte-identical to its setting-1 one), else 2.

    Returns:
        a `DANv1` or `DANv2` in eval mode.
    """
    state = read_state_dict(path_or_state_dict, map_location)
    cfg = infer_release_config(state)
    version = cfg.pop("version")
    size, length = cfg["kernel_size"], cfg["code_length"]
    encoder = state.get("encoder")
    if encoder is not None and encoder.dim() == 3 and encoder.shape[-2] == size * size:
        pca = PCAEncoder.from_matrix(
            encoder[0].detach().float().cpu(), metadata={"source": "release checkpoint"}
        )
    else:  # missing or malformed: the strict check below reports it
        pca = PCAEncoder.from_matrix(torch.zeros(size * size, length))
    if setting is None:
        setting = 1 if (size, length) == (21, 10) else 2
    model: nn.Module = (DANv1 if version == 1 else DANv2)(pca=pca, loop=loop, setting=setting, **cfg)
    assert isinstance(model, DAN)
    load_official_weights(model, state)
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    return model.eval()
