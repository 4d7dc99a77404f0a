"""``dan_blocks.optimize(model)``: the fast variants swapped in once, in place, with the plain model's numbers.

The reference is always the plain model (or its float64 copy) on identical weights, run next to the optimised
``copy.deepcopy``; expectations on classes and attributes are written out by hand, never read back from the
code under test.
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
from itertools import chain

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import dan_blocks
from dan_blocks import DAN, DANOutput, DANv1, DANv2, EstimatorV1, EstimatorV2, RestorerV1, RestorerV2, dan_v1, dan_v2
from dan_blocks.archs import Upsampler
from dan_blocks.fast import (
    FastCRB,
    FastDAN,
    FastDPCB,
    FastDPCG,
    FastEstimatorV2,
    FastRestorerV1,
    FastRestorerV2,
    FoldedUpsampler,
    is_optimized,
    optimize,
)
from dan_blocks.layers import CRB, DPCB, DPCG

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CL = torch.channels_last
LR_SHAPE = (2, 3, 17, 23)  # batch > 1, odd LR sizes


def rel(a: Tensor, b: Tensor) -> float:
    """max |a - b| / max |b| in float64."""
    a64, b64 = a.detach().double(), b.detach().double()
    return float((a64 - b64).abs().max() / b64.abs().max())


def randomised(model: nn.Module, seed: int) -> nn.Module:
    """Every parameter drawn from N(0, 0.05²) (buffers such as the PCA are kept): outputs far from trivial."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    return model


def preset(version: str, scale: int, seed: int = 0) -> DAN:
    model = dan_v2(scale, nb=2, ng=2, est_nb=2) if version == "v2" else dan_v1(scale, nb=3, est_nb=2)
    return randomised(model, seed).eval()  # type: ignore[return-value]


def random_lr(seed: int, shape: tuple[int, ...] = LR_SHAPE) -> Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def outputs(out: DANOutput) -> list[Tensor]:
    """Every tensor of a DAN output: each iteration's SR, code and (if any) kernel."""
    return [*out.srs, *out.codes, *(k for k in out.kernels if k is not None)]


def assert_same_structure(out: DANOutput, ref: DANOutput) -> None:
    assert len(out.srs) == len(ref.srs) and len(out.codes) == len(ref.codes) == len(out.kernels)
    assert [k is None for k in out.kernels] == [k is None for k in ref.kernels]
    for a, b in zip(outputs(out), outputs(ref), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype


# ---------------------------------------------------------------- outputs equal the plain model's


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_outputs_equal_the_plain_model_float32(version: str, scale: int) -> None:
    plain = preset(version, scale, seed=scale)
    fast = dan_blocks.optimize(copy.deepcopy(plain))
    lr = random_lr(scale)
    with torch.no_grad():
        ref = plain(lr)
        out = fast(lr)
        sr = fast.super_resolve(lr)
    # the reference is not trivial: one SR per iteration at s x the LR, the batch items differ, the code moves
    assert len(ref.srs) == plain.loop == 4
    assert ref.sr.shape == (2, 3, 17 * scale, 23 * scale)
    assert rel(ref.sr[0], ref.sr[1]) > 1e-2
    assert rel(ref.srs[0], ref.srs[1]) > 1e-3
    if version == "v2":
        kernel = ref.kernels[0]
        assert kernel is not None and float(kernel.std() / kernel.mean()) > 1e-2  # not the uniform kernel
    assert_same_structure(out, ref)
    for a, b in zip(outputs(out), outputs(ref), strict=True):
        assert rel(a, b) <= 1e-5
    assert rel(out.sr, ref.sr) <= 1e-5
    assert sr.shape == ref.sr.shape and rel(sr, ref.sr) <= 1e-5


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_outputs_bfloat16(version: str, scale: int) -> None:
    """bfloat16 keeps 8 significant bits (unit roundoff u = 2^-8 ~ 3.9e-3), and the fast variants round at other
    points than the plain blocks (the upsampler's folded weight is rounded once instead of three chained convs,
    the code enters as a bias, the updates are fused), so fast and plain bf16 agree only to a few roundoffs,
    not to 1e-5. What must hold is that the fast bf16 model is as accurate as the plain bf16 model: per output,
    its distance to the float32 plain model is at most twice the plain bf16 model's own distance plus one
    roundoff, and its distance to the plain bf16 model at most three times that plus one roundoff (measured:
    below 0.6 of these bounds). A real error (a wrong border, a lost term) is of order 1 and fails either."""
    exact = preset(version, scale, seed=scale)
    plain = copy.deepcopy(exact).to(torch.bfloat16)
    fast = dan_blocks.optimize(copy.deepcopy(exact).to(torch.bfloat16))
    lr = random_lr(scale)
    with torch.no_grad():
        ref32 = exact(lr)
        ref = plain(lr.to(torch.bfloat16))
        out = fast(lr.to(torch.bfloat16))
        sr = fast.super_resolve(lr.to(torch.bfloat16))
    assert_same_structure(out, ref)
    assert sr.dtype == torch.bfloat16 and sr.shape == ref.sr.shape
    u = 2.0**-8
    for got, low, truth in zip([*outputs(out), sr], [*outputs(ref), ref.sr], [*outputs(ref32), ref32.sr], strict=True):
        plain_error = rel(low, truth)
        assert plain_error < 0.1  # the plain bf16 model itself is a usable approximation
        assert rel(got, truth) <= 2 * plain_error + u
        assert rel(got, low) <= 3 * plain_error + u


def test_outputs_come_back_nchw_and_weights_are_channels_last() -> None:
    plain = preset("v2", 4)
    fast = dan_blocks.optimize(copy.deepcopy(plain))
    four_d = [p for p in fast.parameters() if p.dim() == 4]
    assert four_d and all(p.is_contiguous(memory_format=CL) for p in four_d)
    assert all(p.is_contiguous() for p in plain.parameters())  # the plain copy is untouched
    lr = random_lr(1)
    assert lr.is_contiguous() and not lr.is_contiguous(memory_format=CL)
    with torch.no_grad():
        out = fast(lr)
        sr = fast.super_resolve(lr)
        ref = plain(lr)
    for tensor in [*outputs(out), out.sr, sr]:
        assert tensor.is_contiguous()
    assert rel(sr, ref.sr) <= 1e-5
    assert lr.is_contiguous()  # the caller's input is not converted in place


def test_channels_last_false_keeps_the_layout() -> None:
    plain = preset("v1", 2)
    fast = dan_blocks.optimize(copy.deepcopy(plain), channels_last=False)
    assert type(fast).__name__ == "FastDANv1"
    assert all(p.is_contiguous() for p in fast.parameters())
    lr = random_lr(2)
    with torch.no_grad():
        ref, out = plain(lr), fast(lr)
    for a, b in zip(outputs(out), outputs(ref), strict=True):
        assert rel(a, b) <= 1e-5


# ---------------------------------------------------------------- classes, idempotence, state_dict


def _expected_fast_classes(version: str) -> dict[str, type[nn.Module]]:
    """Written out by hand: module name -> the class optimize must give it (for the reduced presets)."""
    if version == "v1":
        return {
            "restorer": FastRestorerV1, "restorer.body.0": FastCRB, "restorer.body.2": FastCRB,
            "restorer.upscale": FoldedUpsampler, "estimator": EstimatorV1, "estimator.body.1": FastCRB,
        }
    return {
        "restorer": FastRestorerV2, "restorer.body.0": FastDPCG, "restorer.body.1.body.1": FastDPCB,
        "restorer.upscale": FoldedUpsampler, "estimator": FastEstimatorV2, "estimator.body": FastDPCG,
        "estimator.body.body.0": FastDPCB,
    }


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_optimize_swaps_every_plain_block_in_place(version: str) -> None:
    model = preset(version, 4)
    assert not is_optimized(model)
    params = list(model.parameters())
    got = dan_blocks.optimize(model)
    assert got is model
    assert is_optimized(model)
    assert all(a is b for a, b in zip(model.parameters(), params, strict=True))  # same Parameter objects
    modules = dict(model.named_modules())
    for name, cls in _expected_fast_classes(version).items():
        assert type(modules[name]) is cls, name
    plain_types = (CRB, DPCB, DPCG, Upsampler, RestorerV1, RestorerV2, EstimatorV2, DAN, DANv1, DANv2)
    assert not any(type(m) in plain_types for m in modules.values())


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_optimize_is_idempotent(version: str) -> None:
    model = dan_blocks.optimize(preset(version, 3))
    classes = {name: type(m) for name, m in model.named_modules()}
    tensors = {name: (t, t.data_ptr(), t.stride(), t.detach().clone())
               for name, t in chain(model.named_parameters(), model.named_buffers())}
    flags = {name: vars(m).get("channels_last") for name, m in model.named_modules()}
    assert dan_blocks.optimize(model) is model
    assert {name: type(m) for name, m in model.named_modules()} == classes
    assert {name: vars(m).get("channels_last") for name, m in model.named_modules()} == flags
    after = dict(chain(model.named_parameters(), model.named_buffers()))
    assert after.keys() == tensors.keys()
    for name, (tensor, ptr, stride, value) in tensors.items():
        assert after[name] is tensor and tensor.data_ptr() == ptr and tensor.stride() == stride, name
        assert torch.equal(tensor, value), name
    assert is_optimized(model)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_state_dict_is_unchanged(version: str) -> None:
    plain = preset(version, 2)
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    fast = dan_blocks.optimize(copy.deepcopy(plain))
    after = fast.state_dict()
    assert list(after) == list(before)
    for key, value in before.items():
        assert after[key].dtype == value.dtype and after[key].shape == value.shape, key
        assert torch.equal(after[key], value), key
    # a state_dict saved from the optimised model loads into a plain one (strictly) and gives the same numbers
    reloaded = preset(version, 2, seed=99)
    reloaded.load_state_dict(after)
    lr = random_lr(3)
    with torch.no_grad():
        assert rel(fast(lr).sr, reloaded(lr).sr) <= 1e-5


_FAST_PATH_NAMES = ("fast_path", "set_fast_path", "sync_layout", "accepts_lr_memo", "_fold_cache", "folded",
                    "first_basic", "channels_last")


@pytest.mark.parametrize("cls", [CRB, DPCB, DPCG, Upsampler, DAN, DANv1, DANv2, RestorerV1, RestorerV2,
                                 EstimatorV1, EstimatorV2])
def test_plain_blocks_have_no_fast_paths(cls: type[nn.Module]) -> None:
    for name in _FAST_PATH_NAMES:
        assert not hasattr(cls, name), f"{cls.__name__}.{name}"
    params = set(inspect.signature(cls.forward).parameters)
    assert not params & {"memo", "basic", "first_basic"}, cls.__name__


def test_plain_model_keeps_no_cache_and_old_switches_are_gone() -> None:
    model = preset("v2", 2)
    with torch.no_grad():
        model(random_lr(4))
    for module in model.modules():
        assert "_fold_cache" not in vars(module) and "fast_path" not in vars(module)
    assert all(p.is_contiguous() for p in model.parameters())
    import dan_blocks.archs.dan_arch as dan_arch

    for name in ("set_fast_path", "fast_path", "fast_path_enabled"):
        assert not hasattr(dan_arch, name)
    for old in ("dan_blocks.layers.subpixel_fold", "dan_blocks.layers.subpixel_border", "dan_blocks.archs.lr_memo"):
        assert importlib.util.find_spec(old) is None, old


# ---------------------------------------------------------------- subclasses and arguments


class _ClampedDAN(DAN):
    """A user's DAN whose forward clamps the final SR: optimize must not replace this forward."""

    def forward(self, lr: Tensor) -> DANOutput:
        out = super().forward(lr)
        return out._replace(sr=out.sr.clamp(0.0, 0.5))


class _MyCRB(CRB):
    """A user's CRB with its own forward (the code is ignored)."""

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        return 0.5 * feat, cond


def test_user_subclass_that_overrides_forward_is_left_alone() -> None:
    base = preset("v2", 2)
    plain = _ClampedDAN(base.restorer, base.estimator, base.pca, loop=2).eval()
    fast = dan_blocks.optimize(copy.deepcopy(plain))
    assert type(fast) is _ClampedDAN and not isinstance(fast, FastDAN)
    assert type(fast.restorer) is FastRestorerV2  # its plain sub-modules are still optimised
    lr = random_lr(5)
    with torch.no_grad():
        ref, out = plain(lr), fast(lr)
    assert float(ref.sr.max()) == 0.5 and float(out.sr.max()) == 0.5  # the user's forward ran
    for a, b in zip([out.sr, *outputs(out)], [ref.sr, *outputs(ref)], strict=True):
        assert rel(a, b) <= 1e-5
    assert is_optimized(fast)

    blocks = nn.ModuleList([_MyCRB(8, 4, reduction=4), CRB(8, 4, reduction=4)])
    dan_blocks.optimize(blocks)
    assert type(blocks[0]) is _MyCRB and type(blocks[1]) is FastCRB
    feat = torch.randn(1, 8, 5, 6)
    with torch.no_grad():
        assert torch.equal(blocks[0](feat, torch.randn(1, 4))[0], 0.5 * feat)


class _SmallDANv2(DANv2):
    """A user's preset: only a constructor."""

    def __init__(self) -> None:
        super().__init__(2, nb=1, ng=1, est_nb=1, loop=2)


def test_preset_subclasses_become_fast_and_keep_isinstance() -> None:
    plain = preset("v2", 2)
    fast = dan_blocks.optimize(copy.deepcopy(plain))
    assert type(fast) is not DANv2 and type(fast).__name__ == "FastDANv2"
    assert isinstance(fast, DANv2) and isinstance(fast, FastDAN) and isinstance(fast, DAN)
    assert fast.setting == plain.setting and fast.residual == plain.residual  # the preset's attributes stay
    v1 = dan_blocks.optimize(preset("v1", 2))
    assert type(v1).__name__ == "FastDANv1" and isinstance(v1, DANv1) and not isinstance(v1, DANv2)
    # the same preset class always maps to the same fast class
    assert type(dan_blocks.optimize(preset("v2", 3))) is type(fast)

    mine = randomised(_SmallDANv2(), 6).eval()
    fast_mine = dan_blocks.optimize(copy.deepcopy(mine))
    assert isinstance(fast_mine, _SmallDANv2) and isinstance(fast_mine, FastDAN)
    assert type(fast_mine).__name__ == "Fast_SmallDANv2"
    lr = random_lr(6)
    with torch.no_grad():
        assert rel(fast_mine(lr).sr, mine(lr).sr) <= 1e-5
    # a deep copy of an optimised model is the same fast class with the same numbers
    twin = copy.deepcopy(fast_mine)
    assert type(twin) is type(fast_mine)
    with torch.no_grad():
        assert torch.equal(twin(lr).sr, fast_mine(lr).sr)


def test_optimize_returns_its_argument_and_rejects_non_modules() -> None:
    block = CRB(8, 4, reduction=4)
    assert dan_blocks.optimize(block) is block and type(block) is FastCRB
    other = nn.Linear(3, 2)  # nothing to swap: returned as is
    assert dan_blocks.optimize(other) is other and type(other) is nn.Linear and is_optimized(other)
    for bad in (None, "model", {"restorer": 1}, torch.zeros(3)):
        with pytest.raises(TypeError, match=r"expects an nn\.Module"):
            dan_blocks.optimize(bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- training the optimised model


def _loss(out: DANOutput, hr: Tensor) -> Tensor:
    """Smooth (MSE), so that both models' gradients are continuous in their inputs; every iteration's SR and
    code enter, so the estimator is trained too (its input is detached from the restorer)."""
    return sum((F.mse_loss(sr, hr) for sr in out.srs), torch.zeros((), dtype=hr.dtype)) + sum(
        (code.square().mean() for code in out.codes), torch.zeros((), dtype=hr.dtype))


def _sgd_steps(model: nn.Module, lr: Tensor, hr: Tensor, steps: int = 2) -> list[tuple[float, list[Tensor]]]:
    """``steps`` SGD steps; the loss and the gradients (in parameter order) before each step."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.5)
    record = []
    for _ in range(steps):
        opt.zero_grad()
        loss = _loss(model(lr), hr)
        loss.backward()
        grads = [p.grad.detach().clone() for p in model.parameters()]  # type: ignore[union-attr]
        record.append((float(loss.detach()), grads))
        opt.step()
    return record


def _training_data(dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(11)
    return torch.rand(2, 3, 9, 11, generator=gen).to(dtype), torch.rand(2, 3, 18, 22, generator=gen).to(dtype)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_trained_optimised_model_equals_the_plain_model_float64(version: str) -> None:
    """In float64 the comparison measures the fast variants' algebra (the memo, the code as a bias, addcmul,
    channels_last), not float32 rounding: loss, gradients and weights after each step agree to 1e-5 (in
    practice to ~1e-15)."""
    plain = preset(version, 2, seed=7).double().train()
    fast = dan_blocks.optimize(copy.deepcopy(plain))
    assert fast.training
    lr, hr = _training_data(torch.float64)
    with torch.no_grad():
        fast.eval()(lr)  # a first inference call: the upsampler's fold is computed and cached
    fast.train()
    ref = _sgd_steps(plain, lr, hr)
    got = _sgd_steps(fast, lr, hr)
    for (ref_loss, ref_grads), (loss, grads) in zip(ref, got, strict=True):
        assert abs(loss - ref_loss) <= 1e-5 * abs(ref_loss)
        for g, r in zip(grads, ref_grads, strict=True):
            assert r.abs().max() > 0
            assert rel(g, r) <= 1e-5
    for p, r in zip(fast.parameters(), plain.parameters(), strict=True):
        assert rel(p, r) <= 1e-5
    # after training, inference uses the new weights (the cached fold followed the optimiser's steps)
    lr_test = random_lr(8, (1, 3, 12, 12)).double()
    with torch.no_grad():
        assert rel(fast.eval()(lr_test).sr, plain.eval()(lr_test).sr) <= 1e-5
    assert rel(plain(lr_test).sr, preset(version, 2, seed=7).double()(lr_test).sr) > 1e-4  # training moved it


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_trained_optimised_model_float32(version: str) -> None:
    """Float32, the training dtype, against the plain model stored channels_last (the layout the optimised model
    trains in) and its float64 copy. Losses agree to 1e-5 relative. Some gradients are sums of many nearly
    cancelling terms (a code-channel weight, a last bias), on which the plain float32 model itself is up to ~4e-4
    off its float64 gradients (differently in each memory layout), so two float32 runs cannot be held to 1e-5
    there. Each gradient, and each weight after a step, is therefore compared with the plain float64 run: the
    fast float32 one is within 1e-5 relative of it plus twice the plain float32 model's own error (measured:
    below 0.3 of that bound); the weights after the steps also agree with the plain float32 ones to 1e-5."""
    plain = preset(version, 2, seed=7).train()
    exact = copy.deepcopy(plain).double()
    plain_cl = copy.deepcopy(plain).to(memory_format=CL)
    fast = dan_blocks.optimize(copy.deepcopy(plain))
    lr, hr = _training_data(torch.float32)
    ref64 = _sgd_steps(exact, lr.double(), hr.double())
    ref32 = _sgd_steps(plain_cl, lr.contiguous(memory_format=CL), hr)
    got = _sgd_steps(fast, lr, hr)
    for (loss, grads), (loss32, grads32), (loss64, grads64) in zip(got, ref32, ref64, strict=True):
        assert abs(loss - loss32) <= 1e-5 * abs(loss32) and abs(loss - loss64) <= 1e-5 * abs(loss64)
        for g, r32, r64 in zip(grads, grads32, grads64, strict=True):
            assert rel(g, r64) <= 1e-5 + 2 * rel(r32, r64)
    for p, r32, r64 in zip(fast.parameters(), plain_cl.parameters(), exact.parameters(), strict=True):
        assert rel(p, r32) <= 1e-5
        assert rel(p, r64) <= 1e-5 + 2 * rel(r32, r64)


# ---------------------------------------------------------------- bugs found while rewriting these tests


def test_fold_cache_sees_new_weights_loaded_inside_inference_mode() -> None:
    # inference tensors have no version counter: the fold cache must still see an in-place load_state_dict
    lr = random_lr(3, (1, 3, 9, 11))
    with torch.inference_mode():
        model = optimize(preset("v2", 2, seed=1))
        model(lr)  # folds and caches
        new = preset("v2", 2, seed=2)
        model.load_state_dict(new.state_dict())
        assert rel(model(lr).sr, new(lr).sr) <= 1e-5


def test_subclass_overriding_any_plain_method_is_left_alone() -> None:
    calls: list[str] = []

    class CountingDAN(DAN):
        def restore(self, lr: Tensor, code: Tensor) -> Tensor:
            calls.append("restore")
            return super().restore(lr, code)

    class Centred(EstimatorV2):
        def normalise(self, sr: Tensor, lr: Tensor) -> tuple[Tensor, Tensor]:
            return sr - 0.5, lr - 0.5

    base = preset("v2", 2)
    model = CountingDAN(base.restorer, Centred(nf=32, num_blocks=2, scale=2), base.pca, loop=2).eval()
    randomised(model.estimator, 4)
    lr = random_lr(5, (1, 3, 9, 9))
    with torch.no_grad():
        ref = copy.deepcopy(model)(lr)
        calls.clear()
        optimize(model)
        out = model(lr)
    assert type(model) is CountingDAN and type(model.estimator) is Centred
    assert calls == ["restore", "restore"]
    for a, b in zip(outputs(out), outputs(ref), strict=True):
        assert rel(a, b) <= 1e-5


def test_optimised_presets_unpickle_in_a_fresh_process(tmp_path) -> None:
    import subprocess
    import sys

    path = tmp_path / "whole_model.pt"
    model = optimize(dan_v2(2, nb=1, ng=1, est_nb=1).eval())
    torch.save(model, path)
    code = (
        "import torch, dan_blocks.archs; "
        f"m = torch.load({str(path)!r}, weights_only=False); "
        "print(type(m).__name__, isinstance(m, dan_blocks.archs.DANv2))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["FastDANv2", "True"]


def test_sr_is_the_last_iterations_sr_after_optimize() -> None:
    model = optimize(preset("v1", 2))
    with torch.no_grad():
        out = model(random_lr(6, (1, 3, 8, 8)))
    assert out.sr is out.srs[-1] and out.sr.is_contiguous()
