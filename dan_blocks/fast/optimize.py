"""``optimize(model)``: switch on the exact fast forms of the modules it knows, per device (timm's
``reparameterize_model`` spirit: a plain walk of the module tree).

Each module that has a fast form owns it: a ``fast`` flag read by its one ``forward`` (`TwoConv`,
`ChannelAttention`, the ``stretch_concat`` and ``dual_path`` fusions, `Upsampler`), the work done by functions of
`dan_blocks.ops`. `optimize()` sets the flag only on modules whose exact type it knows; a subclass (which may
have changed the forward the fast form assumes) or any other module is left as it is. No class is changed or
made, nothing is switched globally.
"""

from __future__ import annotations

import torch
from torch import nn

from ..archs import Upsampler
from ..layers import ChannelAttention, DualPath, StretchConcat, TwoConv

__all__ = ["FAST_FORMS", "fast_form_types", "is_optimized", "optimize", "skipped_by_optimize"]

#: the exact module types whose fast form pays on a device type; others run their plain form there
FAST_FORMS: dict[str, frozenset[type[nn.Module]]] = {
    # CPU (oneDNN): fused conv + LeakyReLU, 1x1 convs on one pixel as matrix products, the code as a bias
    # instead of a stretched map, the upsampler folded into one sub-pixel conv
    "cpu": frozenset({TwoConv, DualPath, ChannelAttention, StretchConcat, Upsampler}),
    # CUDA: nothing. At DAN's sizes the eager forward is bound by the host launching kernels, and every fast form
    # measured slower on an H200 (the border-band rewrites add kernels; even the 1x1-as-matrix-product forms cost
    # more host time than they save): 2026-12-04, benchmarks/bench_gpu.py. Speed on a GPU comes from
    # `dan_blocks.fast.capture` (CUDA graphs).
    "cuda": frozenset(),
}


def fast_form_types() -> frozenset[type[nn.Module]]:
    """Every module type that has a fast form on some device."""
    return frozenset().union(*FAST_FORMS.values())


def _device_type(model: nn.Module, device: str | torch.device | None) -> str:
    if device is not None:
        return torch.device(device).type
    first = next(iter(model.parameters()), None)
    return "cpu" if first is None else first.device.type


def _defined_in_dan_blocks(cls: type) -> bool:
    return cls.__module__ == "dan_blocks" or cls.__module__.startswith("dan_blocks.")


def _unknown_subclass(cls: type, known: frozenset[type[nn.Module]]) -> bool:
    """A subclass of a type with a fast form (not that type itself), or a class defined outside dan-blocks that
    derives from one of its modules (a user's block, restorer or DAN: its forward is not one optimize knows)."""
    if cls in known:
        return False
    if issubclass(cls, tuple(known)):
        return True
    return not _defined_in_dan_blocks(cls) and any(
        _defined_in_dan_blocks(base) and issubclass(base, nn.Module) for base in cls.__mro__[1:]
    )


def skipped_by_optimize(model: nn.Module) -> list[str]:
    """``"name (Type)"`` of every sub-module whose exact type `optimize()` does not know although it derives from
    one it does: a subclass of a type with a fast form (left in its plain form: its forward may differ from the
    one the fast form assumes), or a user's subclass of any dan-blocks module (run as its own code says; the
    known modules inside it still get their fast forms, which are exact on their own)."""
    known = fast_form_types()
    return [
        f"{name or '<root>'} ({type(module).__qualname__})"
        for name, module in model.named_modules()
        if _unknown_subclass(type(module), known)
    ]


def optimize(
    model: nn.Module,
    *,
    channels_last: bool | None = None,
    device: str | torch.device | None = None,
    strict: bool = False,
) -> nn.Module:
    """Switch on the exact fast forms of ``model``'s sub-modules, in place, and return ``model``; idempotent.

    For every sub-module whose exact type has a fast form on the device (`FAST_FORMS`), its ``fast`` flag is set:
    same parameters, ``state_dict`` and class, the same numbers (<= 1e-5 relative in fp32, tested), with gradients
    too (the inference-only forms step aside while gradients are recorded). The model still pickles, deep-copies,
    trains and loads state dicts as before.

    Args:
        model: any module; sub-modules of other types are left as they are.
        channels_last: also store 4-d weights channels_last; activations follow the weights. Default (None): on
            the CPU, where oneDNN is fastest so; not on CUDA, where fp32 (TF32) convolutions of DAN's sizes were
            measured slower channels_last (`dan_blocks.fast.capture` chooses it for bf16/fp16).
        device: the device type to choose fast forms for (``"cpu"``, ``"cuda"``); default: where the model's
            parameters are.
        strict: raise ``ValueError`` naming the sub-modules whose exact type optimize does not know although it
            derives from one it does (`skipped_by_optimize`: a subclass of a type with a fast form, or a user's
            subclass of a dan-blocks module) instead of leaving them as they are silently; nothing is changed
            then.

    Returns:
        ``model`` itself.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"optimize expects an nn.Module, got {type(model).__name__}")
    kind = _device_type(model, device)
    if strict:
        skipped = skipped_by_optimize(model)
        if skipped:
            raise ValueError(
                "optimize(strict=True): these modules are subclasses of dan-blocks types whose forward optimize "
                f"does not know; they would be left as they are: {', '.join(skipped)}"
            )
    known = FAST_FORMS.get(kind, frozenset())
    for module in model.modules():
        if type(module) in known:
            module.fast = True  # type: ignore[assignment]
    if channels_last is None:
        channels_last = kind == "cpu"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def is_optimized(model: nn.Module, device: str | torch.device | None = None) -> bool:
    """True when every sub-module of a type with a fast form on the device has it switched on."""
    known = FAST_FORMS.get(_device_type(model, device), frozenset())
    return all(bool(getattr(m, "fast", False)) for m in model.modules() if type(m) in known)
