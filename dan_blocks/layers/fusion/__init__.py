"""Kernel fusion: how a degradation code (a kernel's PCA code, a representation) enters the features.

Every fusion has one signature (`Fusion`): built as ``Fusion(nf, cond_nf, **kwargs)``, called as
``fusion(feat, cond) -> (fused, cond')`` with ``fused`` of ``fusion.out_channels`` channels. Blocks (`CRB`,
`DPCB`, `RRDBSFT`) and the restorers take ``fusion=`` as a registered name or a class, like timm's
``attn_layer=``; ``fusion_kwargs=`` passes arguments through.

| name | equation | from |
|---|---|---|
| ``stretch_concat`` | $[f, S(c)]$ | DAN v1 (CRB), SRMD |
| ``dual_path`` | $f \\odot B_2(c)$, $c' = c + B_2(c)$ | DAN v2 (DPCB) |
| ``sft`` | $f \\odot (1 + \\gamma(c)) + \\beta(c)$ | SFT (SFTGAN) |
| ``sft_concat`` | $f \\odot \\sigma(W_\\gamma * [f, c]) + W_\\beta * [f, c]$ | MANet, IKC |
| ``da_conv`` | $W_{1\\times1} * \\delta(w(r) \\circledast f) + f \\odot a(r)$ | DASR |
| ``film`` | $f \\odot \\gamma(c) + \\beta(c)$ from one code MLP | new here (FiLM) |
| ``code_attention`` | $f + W_o\\,\\mathrm{softmax}(q(f) K(c)^\\top / \\sqrt d)\\,V(c)$ | new here |

`list_fusions()` lists them; `register_fusion` adds one (see CONTRIBUTING.md).
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from ...utils import Registry
from .base import Fusion, as_global_code, as_map, conv_after_fusion
from .code_attention import CodeAttention
from .da_conv import DAConv
from .dual_path import DualPath
from .film import FiLM
from .sft import SFT, SFTConcat, SFTLayer
from .stretch_concat import StretchConcat

__all__ = [
    "FUSION_REGISTRY",
    "SFT",
    "CodeAttention",
    "DAConv",
    "DualPath",
    "FiLM",
    "Fusion",
    "SFTConcat",
    "SFTLayer",
    "StretchConcat",
    "as_global_code",
    "as_map",
    "conv_after_fusion",
    "create_fusion",
    "fusion_name",
    "get_fusion",
    "list_fusions",
    "register_fusion",
]

#: fusions by name; `register_fusion` adds one
FUSION_REGISTRY = Registry("fusion")


def register_fusion(name: str) -> Any:
    """Class decorator: register a `Fusion` subclass under ``name`` (a name already taken by another class is
    refused)."""

    def decorate(cls: type[Fusion]) -> type[Fusion]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"register_fusion({name!r}) expects an nn.Module class, got {cls!r}")
        FUSION_REGISTRY.register(cls, name)
        cls.fusion_name = name
        return cls

    return decorate


for _name, _cls in (
    ("stretch_concat", StretchConcat),
    ("dual_path", DualPath),
    ("sft", SFT),
    ("sft_concat", SFTConcat),
    ("da_conv", DAConv),
    ("film", FiLM),
    ("code_attention", CodeAttention),
):
    register_fusion(_name)(_cls)


def list_fusions() -> list[str]:
    """The registered fusion names, sorted."""
    return sorted(FUSION_REGISTRY.keys())


def get_fusion(fusion: str | type[nn.Module]) -> type[nn.Module]:
    """The fusion class for a registered name, or the class itself (timm's ``get_attn``).

    Raises:
        KeyError: an unknown name (the message lists close names and every registered one).
        TypeError: neither a name nor an nn.Module class.
    """
    if isinstance(fusion, str):
        return FUSION_REGISTRY.get(fusion)
    if isinstance(fusion, type) and issubclass(fusion, nn.Module):
        return fusion
    raise TypeError(f"fusion must be a registered name ({', '.join(list_fusions())}) or an nn.Module class, "
                    f"got {fusion!r}")


def create_fusion(
    fusion: str | type[nn.Module],
    nf: int,
    cond_nf: int,
    fusion_kwargs: dict[str, Any] | None = None,
    **block_defaults: Any,
) -> nn.Module:
    """``get_fusion(fusion)(nf, cond_nf, **block_defaults, **fusion_kwargs)``.

    ``block_defaults`` are what the block knows (its LeakyReLU slope, the v2 condition path's kernel size, ...):
    each is passed only when the fusion's constructor takes an argument of that name, and ``fusion_kwargs``
    (the user's) win over them.

    Raises:
        TypeError: ``fusion_kwargs`` is not a mapping, or names an argument the fusion does not take (the message
            names the fusion and its arguments).
    """
    cls = get_fusion(fusion)
    if fusion_kwargs is not None and not isinstance(fusion_kwargs, dict):
        raise TypeError(f"fusion_kwargs must be a dict of the fusion's arguments, got {type(fusion_kwargs).__name__}")
    parameters = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    kwargs = {k: v for k, v in block_defaults.items() if takes_any or k in parameters}
    kwargs.update(fusion_kwargs or {})
    unknown = [k for k in (fusion_kwargs or {}) if not takes_any and k not in parameters]
    if unknown:
        accepted = [k for k in parameters if k not in ("self", "nf", "cond_nf")]
        raise TypeError(
            f"fusion {fusion_name(cls)!r} takes no argument {', '.join(map(repr, unknown))} "
            f"(it takes: {', '.join(accepted) or 'nothing'})"
        )
    return cls(nf, cond_nf, **kwargs)


def fusion_name(fusion: str | type[nn.Module]) -> str:
    """The registered name of ``fusion`` (a name or a class); a class's own name if it is not registered."""
    if isinstance(fusion, str):
        return fusion
    for name, cls in FUSION_REGISTRY:
        if cls is fusion:
            return str(name)
    return fusion.__name__
