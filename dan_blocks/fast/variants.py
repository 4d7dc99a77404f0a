"""``optimize(model)``: swap in the exact fast variants, once, in place (timm's ``reparameterize_model`` spirit)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..archs import DAN, DANv1, DANv2, EstimatorV2, RestorerV1, RestorerV2, Upsampler
from ..layers import CRB, DPCB, DPCG
from .archs import FastDAN, FastDANv1, FastDANv2, FastEstimatorV2, FastRestorerV1, FastRestorerV2
from .crb import FastCRB
from .dpcb import FastDPCB, FastDPCG
from .upsample import FoldedUpsampler

__all__ = ["FAST_VARIANTS", "is_optimized", "optimize", "variant_for"]


def _dpcg_ready(group: nn.Module) -> bool:
    return all(type(block) is FastDPCB for block in group.body)


#: plain class -> (fast variant, condition on the instance); see `variant_for` for subclasses
FAST_VARIANTS: dict[type[nn.Module], tuple[type[nn.Module], Callable[[nn.Module], bool]]] = {
    CRB: (FastCRB, lambda m: True),
    DPCB: (FastDPCB, lambda m: True),
    DPCG: (FastDPCG, _dpcg_ready),
    Upsampler: (FoldedUpsampler, lambda m: True),
    RestorerV1: (FastRestorerV1, lambda m: True),
    RestorerV2: (FastRestorerV2, lambda m: True),
    EstimatorV2: (FastEstimatorV2, lambda m: True),
    DAN: (FastDAN, lambda m: True),
    DANv1: (FastDANv1, lambda m: True),
    DANv2: (FastDANv2, lambda m: True),
}


_SUBCLASS_VARIANTS: dict[type[nn.Module], type[nn.Module]] = {}


def _only_adds(cls: type, plain: type, fast: type) -> bool:
    """``cls`` (a subclass of ``plain``) overrides no method or property of ``plain`` or ``fast``: it only adds a
    constructor or new names, so the fast variant's ``forward`` (which may not call every plain method) keeps
    its behaviour."""
    for klass in cls.__mro__[: cls.__mro__.index(plain)]:
        for name in vars(klass):
            if not name.startswith("__") and (hasattr(plain, name) or hasattr(fast, name)):
                return False
    return True


def variant_for(module: nn.Module) -> type[nn.Module] | None:
    """The fast class ``module`` becomes, or None.

    The exact plain types map through `FAST_VARIANTS` (the presets too: ``DANv2`` -> ``FastDANv2``, still an
    instance of ``DANv2``). Another subclass that only adds a constructor or new names (a user's preset) gets
    a subclass of both, made here (picklable only in a process that has optimised one: save state dicts); a
    subclass that overrides any method of the plain class is left alone.
    """
    cls = type(module)
    entry = FAST_VARIANTS.get(cls)
    if entry is not None:
        return entry[0] if entry[1](module) else None
    for plain, (fast, condition) in FAST_VARIANTS.items():
        if isinstance(module, fast) or not isinstance(module, plain):
            continue
        if not _only_adds(cls, plain, fast) or not condition(module):
            return None
        if cls not in _SUBCLASS_VARIANTS:
            made = type(f"Fast{cls.__name__}", (fast, cls), {"__module__": __name__, "__doc__": fast.__doc__})
            globals().setdefault(made.__name__, made)  # picklable by name in this process (the first of a name)
            _SUBCLASS_VARIANTS[cls] = made
        return _SUBCLASS_VARIANTS[cls]
    return None


def optimize(model: nn.Module, *, channels_last: bool = True) -> nn.Module:
    """Make ``model`` fast for inference, in place, and return it; idempotent; outputs equal the plain model's.

    Every sub-module whose exact type has a fast variant (`FAST_VARIANTS`) becomes that variant: same
    parameters, names and ``state_dict``, a different ``forward``:

    - `CRB` -> `FastCRB` (code as bias, no stretch);
    - DPCB / DPCG -> `FastDPCB` / `FastDPCG` (fused
      conv + LeakyReLU on the CPU, ``addcmul``, 1x1 paths as matrix products);
    - the upsampler -> `FoldedUpsampler` (one sub-pixel conv for inference);
    - v1/v2 restorers and the v2 estimator -> LR-memo variants, and `DAN` ->
      `FastDAN` (LR-only work once per call, no unused last estimator pass in
      ``super_resolve``).

    With ``channels_last`` the 4-d weights are stored channels_last (``model.to(memory_format=...)``, done
    here once) and FastDAN converts its input. Nothing is switched globally and nothing is rewritten inside
    ``forward``. The optimised model still trains: every variant is exact with gradients too, and the
    inference-only rewrites (fusion, fold) step aside while gradients are recorded.

    Args:
        model: any module; sub-modules without a fast variant (a user's own) are left as they are.
        channels_last: also store the weights channels_last (faster convolutions on CPU and GPU).

    Returns:
        ``model`` itself.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"optimize expects an nn.Module, got {type(model).__name__}")
    for module in reversed(list(model.modules())):  # children before their parents
        variant = variant_for(module)
        if variant is not None:
            module.__class__ = variant
    if channels_last:
        model.to(memory_format=torch.channels_last)
        for module in model.modules():
            if isinstance(module, FastDAN):
                module.channels_last = True
    return model


def is_optimized(model: nn.Module) -> bool:
    """True when no sub-module of ``model`` still has a fast variant to swap in."""
    return all(variant_for(m) is None for m in model.modules())
