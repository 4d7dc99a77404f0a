"""Every layer in bfloat16, under torch.jit.trace (the export path of `SROnly`) and under torch.compile (no graph
breaks). `torch.jit.script` is not supported for blocks whose fusion is injected (deprecated upstream)."""

from __future__ import annotations

import warnings

import pytest
import torch

from dan_blocks import CRB, DPCB, DPCG, ChannelAttention, KernelStretch, PCAEncoder


def _cases() -> list[tuple[str, torch.nn.Module, tuple[torch.Tensor, ...]]]:
    torch.manual_seed(0)
    x = torch.randn(2, 16, 6, 5)
    return [
        ("ca", ChannelAttention(16), (x,)),
        ("crb", CRB(16, 4), (x, torch.randn(2, 4))),
        ("crb_map", CRB(16, 4), (x, torch.randn(2, 4, 3, 5))),
        ("dpcb", DPCB(16, 16), (x, torch.randn(2, 16, 1, 1))),
        ("dpcg", DPCG(16, 16, 3, 1, 2, residual="double"), (x, torch.randn(2, 16, 1, 1))),
        ("pca", PCAEncoder.fit(torch.rand(50, 5, 5), 4), (torch.rand(3, 5, 5),)),
        ("pca_map", PCAEncoder.fit(torch.rand(50, 5, 5), 4, center=True), (torch.rand(2, 25, 3, 4),)),
    ]


def _first(out: object) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out  # type: ignore[index,return-value]


@pytest.mark.parametrize("name,module,args", _cases(), ids=[c[0] for c in _cases()])
def test_trace_matches_eager(name: str, module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python values in the input checks
        traced = torch.jit.trace(module, args, check_trace=False)
    torch.testing.assert_close(_first(traced(*args)), _first(module(*args)))


@pytest.mark.parametrize("name,module,args", _cases(), ids=[c[0] for c in _cases()])
def test_compile_fullgraph_matches_eager(name: str, module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
    torch._dynamo.reset()
    compiled = torch.compile(module, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(_first(compiled(*args)), _first(module(*args)))


@pytest.mark.parametrize("name,module,args", _cases(), ids=[c[0] for c in _cases()])
def test_bfloat16_close_to_float32(name: str, module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
    ref = _first(module(*args))
    low = _first(module.to(torch.bfloat16)(*(a.to(torch.bfloat16) for a in args)))
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), ref, atol=0.1, rtol=0.05)


def test_kernel_stretch_module_equals_expand() -> None:
    code = torch.randn(3, 7)
    like = torch.empty(3, 1, 4, 9)
    out = KernelStretch()(code, like)
    assert torch.equal(out, code.view(3, 7, 1, 1).expand(3, 7, 4, 9))
