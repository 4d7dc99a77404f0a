"""`dan_blocks.fast.capture`: the GPU path's contract, checked on the CPU through the same wrapper (eager and the
compile path), and on CUDA where one is present (skipped otherwise)."""

from __future__ import annotations

import copy

import pytest
import torch

import dan_blocks
from dan_blocks.fast import CapturedSR, capture, optimize


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return dan_blocks.dan_v2(2, nb=1, ng=1, est_nb=1, nf=16, est_nf=8, est_tail_nf=8).eval()


def test_outputs_equal_eager_and_are_never_overwritten() -> None:
    model = _model()
    wrapped = capture(model)
    a, b = torch.rand(1, 3, 9, 7), torch.rand(1, 3, 9, 7)
    out_a = wrapped(a)
    out_b = wrapped(b)
    with torch.no_grad():
        assert torch.equal(out_a, model.super_resolve(a))  # same ops, same numbers
        assert torch.equal(out_b, model.super_resolve(b))
    assert out_a.data_ptr() != out_b.data_ptr() and not torch.equal(out_a, out_b)  # a's result survives b's call


def test_precision_and_memory_format_choices() -> None:
    model = _model()
    lr = torch.rand(2, 3, 8, 8)
    wrapped = capture(copy.deepcopy(model), "bf16")
    assert wrapped.channels_last and not capture(model).channels_last
    out = wrapped(lr)
    assert out.dtype == torch.float32 and out.is_contiguous()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref = model.super_resolve(lr).float()
    assert float((out - ref).abs().max() / ref.abs().max()) < 5e-2
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="precision"):
        capture(model, "fp8")
    with pytest.raises(ValueError, match="LR batch"):
        wrapped(torch.rand(3, 8, 8))


def test_modules_returning_tensors_and_wrong_models() -> None:
    conv = torch.nn.Conv2d(3, 3, 3, padding=1).eval()
    x = torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        assert torch.equal(capture(conv)(x), conv(x))
    class Pair(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    with pytest.raises(TypeError, match="return a tensor"):
        capture(Pair())(x)


@pytest.mark.slow
def test_compile_path_on_the_cpu() -> None:
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.LeakyReLU(0.2)).eval()
    x = torch.rand(1, 3, 6, 6)
    wrapped = CapturedSR(conv, compile=True)
    with torch.no_grad():
        assert torch.allclose(wrapped(x), conv(x), atol=1e-6)


def test_compile_flag_does_not_shadow_module_compile() -> None:
    # the flag is stored as ``use_compile``: ``nn.Module.compile`` stays the method it is on every module
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).eval()
    wrapped = CapturedSR(conv, compile=True)
    assert wrapped.use_compile is True and CapturedSR(conv).use_compile is False
    assert callable(wrapped.compile) and wrapped.compile.__func__ is torch.nn.Module.compile


def test_optimize_chooses_fast_forms_per_device() -> None:
    cpu = optimize(_model())
    cuda = optimize(_model(), device="cuda")  # chosen for CUDA without needing one
    assert cpu.restorer.upscale.fast and not cuda.restorer.upscale.fast
    assert cpu.restorer.head1.weight.is_contiguous(memory_format=torch.channels_last)
    assert cuda.restorer.head1.weight.is_contiguous()  # fp32 on CUDA: NCHW (measured faster there)
    assert not any(getattr(m, "fast", False) for m in cuda.modules())  # on CUDA: the plain forms (measured faster)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_replay_equals_eager() -> None:
    model = _model().cuda()
    wrapped = capture(model)
    lr = torch.rand(2, 3, 16, 12, device="cuda")
    first = wrapped(lr)
    second = wrapped(torch.rand_like(lr))
    with torch.no_grad():
        assert torch.allclose(first, model.super_resolve(lr), rtol=0, atol=1e-5)
    assert not torch.equal(first, second)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_cuda_graph_matches_eager_without_tf32() -> None:
    """compile=True on a GPU: inductor's kernels replayed from the graph; fp32 with TF32 off within 1e-5 relative."""
    model = _model().cuda()
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        wrapped = capture(model, compile=True)
        lr = torch.rand(2, 3, 16, 12, device="cuda")
        first = wrapped(lr)
        kept = first.clone()
        wrapped(torch.rand_like(lr))
        with torch.no_grad():
            ref = model.super_resolve(lr)
        assert float((first - ref).abs().max() / ref.abs().max()) <= 1e-5
        assert torch.equal(first, kept)  # the earlier result is the caller's own
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
