"""Deployment of every preset code path: torch.compile, TorchScript trace, ONNX + onnxruntime, channels_last,
bfloat16 autocast on CPU (reduced block counts), and one full-size preset end to end."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from dan_blocks import DAN, dan_v1, dan_v2, optimize
from dan_blocks.archs import SROnly
from dan_blocks.layers import PCAEncoder

PATHS = [(1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (2, 3), (2, 4)]
IDS = [f"v{v}_x{s}" for v, s in PATHS]


def _model(version: int, scale: int) -> DAN:
    torch.manual_seed(version * 10 + scale)
    pca = PCAEncoder.fit(torch.rand(60, 5, 5, generator=torch.Generator().manual_seed(0)), 4)
    common = {"pca": pca, "kernel_size": 5, "code_length": 4, "loop": 2}
    if version == 1:
        model = dan_v1(scale, nf=8, nb=2, est_nf=8, est_nb=1, reduction=4, **common)
    else:
        model = dan_v2(scale, nf=8, nb=1, ng=2, est_nf=8, est_nb=1, est_tail_nf=8, **common)
    return model.eval()


def _all(out) -> list[torch.Tensor]:
    return [out.sr, *out.srs, *out.codes, *(k for k in out.kernels if k is not None)]


@pytest.mark.parametrize("version,scale", PATHS, ids=IDS)
def test_compile_trace_channels_last_bf16(version: int, scale: int) -> None:
    model = _model(version, scale)
    lr = torch.rand(2, 3, 7, 6)
    with torch.no_grad():
        ref = model(lr)
        # torch.compile, whole graph (no graph breaks), full DANOutput
        torch._dynamo.reset()
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        for a, b in zip(_all(compiled(lr)), _all(ref), strict=True):
            torch.testing.assert_close(a, b)
        # TorchScript trace of the SR-only wrapper, then run at another size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(SROnly(model), lr, check_trace=False)
        other = torch.rand(1, 3, 5, 9)
        torch.testing.assert_close(traced(other), model(other).sr)
        # channels_last weights and input
        last = _model(version, scale).to(memory_format=torch.channels_last)
        out = last(lr.contiguous(memory_format=torch.channels_last))
        for a, b in zip(_all(out), _all(ref), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        # bfloat16 autocast on CPU
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(lr)
        assert low.sr.dtype == torch.bfloat16
        span = float(ref.sr.max() - ref.sr.min())
        assert torch.isfinite(low.sr.float()).all()
        assert float((low.sr.float() - ref.sr).abs().max()) < 0.1 * span


def _onnx_roundtrip(model: DAN, path, sizes: list[tuple[int, int]], tol: float = 1e-4) -> None:
    import onnxruntime as ort

    wrapper = SROnly(model).eval()
    example = torch.rand(2, 3, *sizes[0])  # batch 2: dynamo would specialise a size-1 batch
    dim = torch.export.Dim.DYNAMIC
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            opset_version=18,
            input_names=["lr"],
            output_names=["sr"],
            dynamic_shapes={"lr": {0: dim, 2: dim, 3: dim}},
            dynamo=True,
            verbose=False,
        )
    import onnx

    proto = onnx.load(str(path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, (h, w) in enumerate(sizes, start=1):
        lr = torch.rand(batch, 3, h, w)
        got = session.run(None, {"lr": lr.numpy()})[0]
        with torch.no_grad():
            want = wrapper(lr).numpy()
        assert got.shape == want.shape == (batch, 3, h * model.scale, w * model.scale)
        span = float(want.max() - want.min())
        assert float(np.abs(got - want).max()) <= tol * max(span, 1.0)


@pytest.mark.parametrize("version,scale", PATHS, ids=IDS)
def test_onnx_dynamic_hw_matches_onnxruntime(version: int, scale: int, tmp_path) -> None:
    _onnx_roundtrip(_model(version, scale), tmp_path / "dan.onnx", [(8, 6), (5, 9)])


def test_full_size_v2_x4_onnx_end_to_end(tmp_path) -> None:
    # release sizes (5 groups x 10 DPCBs); one iteration keeps the export graph small enough for CI
    torch.manual_seed(0)
    model = dan_v2(4, pca=torch.linalg.qr(torch.randn(441, 10))[0], loop=1).eval()
    assert sum(p.numel() for p in model.parameters()) == 4_707_708
    _onnx_roundtrip(model, tmp_path / "danv2_x4.onnx", [(6, 6), (5, 7)])


def test_full_size_v1_x4_trace_end_to_end() -> None:
    torch.manual_seed(0)
    model = dan_v1(4, pca=torch.linalg.qr(torch.randn(441, 10))[0], loop=2).eval()
    lr = torch.rand(1, 3, 6, 6)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(SROnly(model), lr, check_trace=False)
        other = torch.rand(1, 3, 7, 5)
        torch.testing.assert_close(traced(other), model(other).sr)


@pytest.mark.parametrize("version,scale", [(1, 4), (2, 4), (2, 3)], ids=["v1_x4", "v2_x4", "v2_x3"])
def test_optimized_model_compiles_traces_and_exports(version: int, scale: int, tmp_path) -> None:
    # optimize() must not cost deployment: graph capture sees the size-generic paths of the fast variants
    plain = _model(version, scale)
    model = optimize(_model(version, scale))
    lr = torch.rand(2, 3, 7, 6)
    with torch.no_grad():
        ref = plain(lr)
        torch._dynamo.reset()
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        for a, b in zip(_all(compiled(lr)), _all(ref), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(SROnly(model), lr, check_trace=False)
        other = torch.rand(1, 3, 5, 9)
        torch.testing.assert_close(traced(other), plain(other).sr, rtol=1e-5, atol=1e-5)
    _onnx_roundtrip(model, tmp_path / "fast.onnx", [(8, 6), (5, 9)])
