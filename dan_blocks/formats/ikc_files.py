"""IKC's released files (yuanjunchai/IKC ``checkpoints/SFTMD_latest_G.pth``, ``Predictor_latest_G.pth``,
``Corrector_latest_G.pth``): layout detection, key mapping, sizes read off the tensors, strict loading, and the
assembly of the three into one `dan_blocks.archs.IKC`.

Layouts (plain state dicts): SFTMD ``conv1..3``, ``sft_branch.{0..nb-1}`` (never used, kept for strict loading),
``SFT-residual{1..nb}.{sft1,sft2}.{mul,add}_conv{1,2}`` / ``.conv{1,2}``, ``sft.*``, ``conv_mid``, ``upscale.{0,3}``,
``conv_output`` (662 entries at x4); Predictor ``ConvNet.{0,2,..,10}`` (12); Corrector ``ConvNet.{0,..,12}``,
``code_dense.{0,2}``, ``global_dense.{0,2,4}`` (24). The library's SFT layer names its branches ``scale.{0,2}``
(``mul_conv1``/``mul_conv2``) and ``shift.{0,2}`` (``add_conv*``); SFTMD's blocks are ``body.{i}``
(``SFT-residual{i+1}``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from ..archs.ikc_arch import IKC, SFTMD, IKCCorrector, IKCPredictor
from ..utils import CheckpointMismatchError, load_state_strict, read_checkpoint
from ..utils.state_record import is_record_key

__all__ = ["from_ikc_state_dict", "ikc_from_release", "ikc_release_kind", "load_ikc_checkpoint",
           "to_ikc_state_dict"]

_SFT = {"scale.0": "mul_conv1", "scale.2": "mul_conv2", "shift.0": "add_conv1", "shift.2": "add_conv2"}
_SFT_BACK = {v: k for k, v in _SFT.items()}


def ikc_release_kind(state: Mapping[str, Any]) -> str | None:
    """``"ikc_sftmd"``, ``"ikc_predictor"``, ``"ikc_corrector"`` or None (none of IKC's layouts)."""
    keys = [k for k in state if isinstance(k, str) and not is_record_key(k)]
    if any(k.startswith("SFT-residual1.") for k in keys) and "conv_output.weight" in keys:
        return "ikc_sftmd"
    if keys and all(k.startswith(("ConvNet.", "code_dense.", "global_dense.")) for k in keys):
        if any(k.startswith("code_dense.") for k in keys):
            return "ikc_corrector"
        if any(k.startswith("ConvNet.") for k in keys):
            return "ikc_predictor"
    return None


def _sft_from(key: str) -> str:
    return re.sub(r"\.(mul_conv1|mul_conv2|add_conv1|add_conv2)\.", lambda m: "." + _SFT_BACK[m.group(1)] + ".", key)


def _sft_to(key: str) -> str:
    return re.sub(r"\.(scale\.0|scale\.2|shift\.0|shift\.2)\.", lambda m: "." + _SFT[m.group(1)] + ".", key)


def from_ikc_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """IKC's keys -> the library's (only SFTMD's differ: ``SFT-residual{i}`` -> ``body.{i-1}``, SFT branches)."""
    out = {}
    for key, value in state.items():
        if is_record_key(key):
            continue
        key = re.sub(r"^SFT-residual(\d+)\.", lambda m: f"body.{int(m.group(1)) - 1}.", key)
        out[_sft_from(key)] = value
    return out


def to_ikc_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """An `SFTMD`, `IKCPredictor` or `IKCCorrector` state dict in the release's layout."""
    out = {}
    for key, value in module.state_dict().items():
        if is_record_key(key):
            continue
        key = re.sub(r"^body\.(\d+)\.", lambda m: f"SFT-residual{int(m.group(1)) + 1}.", key)
        out[_sft_to(key)] = value
    return out


def _shape(state: Mapping[str, Tensor], key: str, where: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in state[key].shape)
    except KeyError:
        raise CheckpointMismatchError(f"{where}: an IKC file without {key!r}") from None


def _sftmd_config(state: Mapping[str, Tensor], where: str) -> dict[str, Any]:
    nf, in_nc = _shape(state, "conv1.weight", where)[:2]
    out_nc = _shape(state, "conv_output.weight", where)[0]
    code_length = _shape(state, "SFT-residual1.sft1.mul_conv1.weight", where)[1] - nf
    nb = len({m.group(1) for k in state if (m := re.match(r"SFT-residual(\d+)\.", k))})
    if "upscale.3.weight" in state:
        scale = 4
    else:
        ratio = _shape(state, "upscale.0.weight", where)[0] // nf
        scale = round(ratio ** 0.5)
        if scale * scale != ratio:
            raise CheckpointMismatchError(f"{where}: upscale.0.weight has {ratio * nf} outputs, not nf*s^2")
    if in_nc != out_nc:
        raise CheckpointMismatchError(f"{where}: SFTMD with {in_nc} input and {out_nc} output channels")
    return {"in_nc": in_nc, "out_nc": out_nc, "nf": nf, "nb": nb, "scale": scale, "code_length": code_length,
            "sft_branch": any(k.startswith("sft_branch.") for k in state)}


def load_ikc_checkpoint(state: Mapping[str, Tensor], where: str = "the IKC file") -> nn.Module:
    """An `SFTMD`, `IKCPredictor` or `IKCCorrector` from one of IKC's files (sizes read off the tensors, strict
    loading), in eval mode.

    Raises:
        CheckpointMismatchError: not one of IKC's layouts, or keys / shapes that do not fit (listed).
    """
    kind = ikc_release_kind(state)
    model: nn.Module
    if kind == "ikc_sftmd":
        model = SFTMD(**_sftmd_config(state, where))
    elif kind == "ikc_predictor":
        nf, in_nc = _shape(state, "ConvNet.0.weight", where)[:2]
        model = IKCPredictor(in_nc, nf, _shape(state, "ConvNet.10.weight", where)[0])
    elif kind == "ikc_corrector":
        nf, in_nc = _shape(state, "ConvNet.0.weight", where)[:2]
        model = IKCCorrector(in_nc, nf, _shape(state, "code_dense.0.weight", where)[1])
    else:
        raise CheckpointMismatchError(f"{where}: not one of IKC's files (SFTMD, Predictor, Corrector)")
    load_state_strict(model, from_ikc_state_dict(state), where)
    return model.eval()


def _read(source: str | os.PathLike[str] | Mapping[str, Tensor], what: str) -> tuple[dict[str, Tensor], str]:
    if isinstance(source, Mapping):
        return dict(source), f"the given {what} state dict"
    where = os.fspath(source)
    from ..utils import load_file

    return read_checkpoint(load_file(where), "params", where=where), where


def ikc_from_release(
    sftmd: str | os.PathLike[str] | Mapping[str, Tensor],
    predictor: str | os.PathLike[str] | Mapping[str, Tensor],
    corrector: str | os.PathLike[str] | Mapping[str, Tensor],
    pca: Any = None,
    loop: int = 7,
) -> IKC:
    """One `IKC` from the release's three files (paths or state dicts), each loaded strictly; ``pca``: IKC's
    ``pca_matrix.pth`` (path or (441, 10) tensor) to reconstruct kernels from the codes (optional); ``loop``: T."""
    parts = {}
    for name, source in (("sftmd", sftmd), ("predictor", predictor), ("corrector", corrector)):
        state, where = _read(source, name)
        if ikc_release_kind(state) != f"ikc_{name}":
            raise CheckpointMismatchError(f"{where}: not IKC's {name} file (its layout is "
                                          f"{ikc_release_kind(state) or 'none of IKC'}'s)")
        parts[name] = load_ikc_checkpoint(state, where)
    restorer = parts["sftmd"]
    assert isinstance(restorer, SFTMD)
    cfg = _sftmd_config(to_ikc_state_dict(restorer), "the SFTMD file")
    model = IKC(cfg["in_nc"], cfg["nf"], cfg["nb"], cfg["scale"], cfg["code_length"],
                sft_branch=cfg["sft_branch"], pca=pca, loop=loop)
    model.restorer.load_state_dict(restorer.state_dict())
    assert model.initial_estimator is not None
    model.initial_estimator.load_state_dict(parts["predictor"].state_dict())
    model.estimator.load_state_dict(parts["corrector"].state_dict())
    return model.eval()
