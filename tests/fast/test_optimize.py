"""``dan_blocks.optimize(model)``: the modules' own fast forms switched on in place, with the plain model's numbers.

The reference is always the plain model (or its float64 copy) on identical weights, run next to the optimised
``copy.deepcopy``; which modules get their fast form is written out by hand, never read back from the code under
test.
"""

from __future__ import annotations

import ast
import copy
import gc
import pickle
import subprocess
import sys
import weakref
from itertools import chain
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import dan_blocks
from dan_blocks import DAN, DANOutput, EstimatorV1, EstimatorV2, RestorerV1, RestorerV2, dan_v1, dan_v2
from dan_blocks.archs import Upsampler
from dan_blocks.fast import FAST_FORMS, is_optimized, optimize, skipped_by_optimize
from dan_blocks.layers import CRB, ChannelAttention, DualPath, PCAEncoder, StretchConcat, TwoConv, list_fusions

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CL = torch.channels_last
LR_SHAPE = (2, 3, 17, 23)  # batch > 1, odd LR sizes
PACKAGE = Path(dan_blocks.__file__).parent


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


def fast_names(model: nn.Module) -> set[str]:
    return {name for name, module in model.named_modules() if getattr(module, "fast", False)}


def module_types(model: nn.Module) -> list[tuple[str, type]]:
    return [(name, type(module)) for name, module in model.named_modules()]


# ---------------------------------------------------------------- outputs equal the plain model's


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_outputs_equal_the_plain_model_float32(version: str, scale: int) -> None:
    plain = preset(version, scale, seed=scale)
    fast = dan_blocks.optimize(copy.deepcopy(plain))
    assert fast_names(fast) and not fast_names(plain)  # the fast forms are on in one, off in the other
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
    """bfloat16 keeps 8 significant bits (unit roundoff u = 2^-8 ~ 3.9e-3), and the fast forms round at other
    points than the plain ones (the upsampler's folded weight is rounded once instead of three chained convs,
    the code enters as a bias), so fast and plain bf16 agree only to a few roundoffs, not to 1e-5. What must hold
    is that the fast bf16 model is as accurate as the plain bf16 model: per output, its distance to the float32
    plain model is at most twice the plain bf16 model's own distance plus one roundoff, and its distance to the
    plain bf16 model at most three times that plus one roundoff. A real error (a wrong border, a lost term) is of
    order 1 and fails either."""
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


def _tiny_dan(version: str, fusion: str, estimator: str, seed: int) -> DAN:
    """A small DAN with any fusion in the restorer and a kernel (v2) or code (v1) estimator."""
    torch.manual_seed(seed)
    k, c = 5, 4
    pca = PCAEncoder.from_matrix(torch.linalg.qr(torch.randn(k * k, c))[0])
    if version == "v1":
        restorer: nn.Module = RestorerV1(nf=16, nb=2, scale=2, code_length=c, reduction=4, fusion=fusion)
    else:
        restorer = RestorerV2(nf=8, nb=2, ng=2, scale=2, code_length=c, fusion=fusion)
    if estimator == "code":
        est: nn.Module = EstimatorV1(nf=8, num_blocks=1, scale=2, code_length=c, reduction=4)
    else:
        est = EstimatorV2(nf=8, num_blocks=2, scale=2, kernel_size=k, tail_nf=8)
    return randomised(DAN(restorer, est, pca, loop=2), seed).eval()  # type: ignore[return-value]


@pytest.mark.parametrize("fusion", list_fusions())
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_every_fusion_stays_exact_under_optimize(version: str, fusion: str) -> None:
    """Not only the defaults: RestorerV1 with ``sft``, RestorerV2 with ``stretch_concat`` and every other fusion,
    with a code (v1) and a kernel (v2) estimator, gives the plain model's numbers; strict mode has nothing to say."""
    for estimator, seed in (("code", 1), ("kernel", 2)):
        plain = _tiny_dan(version, fusion, estimator, seed)
        fast = optimize(copy.deepcopy(plain), strict=True)
        assert fast_names(fast)  # at least the upsampler
        lr = random_lr(seed, (2, 3, 9, 7))
        with torch.no_grad():
            ref, out, sr = plain(lr), fast(lr), fast.super_resolve(lr)
        assert rel(ref.sr[0], ref.sr[1]) > 1e-3
        assert_same_structure(out, ref)
        for a, b in zip([*outputs(out), sr], [*outputs(ref), ref.sr], strict=True):
            assert rel(a, b) <= 1e-5, (version, fusion, estimator)


def test_weights_are_channels_last_and_outputs_follow_them() -> None:
    """Only the weights are converted; activations follow them (PyTorch picks the conv's output layout from its
    weight), so 4-d outputs come back channels_last, with the plain model's values; the caller's input is not
    converted in place."""
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
    for tensor in [*out.srs, out.sr, sr]:
        assert tensor.is_contiguous(memory_format=CL)
    for a, b in zip(outputs(out), outputs(ref), strict=True):
        assert rel(a, b) <= 1e-5
    assert rel(sr, ref.sr) <= 1e-5
    assert lr.is_contiguous()  # the caller's input is not converted in place


def test_channels_last_false_keeps_the_layout() -> None:
    plain = preset("v1", 2)
    fast = dan_blocks.optimize(copy.deepcopy(plain), channels_last=False)
    assert fast_names(fast) and is_optimized(fast)
    assert all(p.is_contiguous() for p in fast.parameters())
    lr = random_lr(2)
    with torch.no_grad():
        ref, out = plain(lr), fast(lr)
    assert all(p.is_contiguous() for p in fast.parameters())  # nor while running
    assert all(t.is_contiguous() for t in [*outputs(out), out.sr])  # NCHW in, NCHW out
    for a, b in zip(outputs(out), outputs(ref), strict=True):
        assert rel(a, b) <= 1e-5


# ---------------------------------------------------------------- what is switched on, and nothing else changes


def _expected_fast(version: str) -> set[str]:
    """Written out by hand for the reduced presets: the modules whose fast form optimize switches on (CPU)."""
    if version == "v1":  # restorer nb=3, estimator est_nb=2: each CRB's fusion and channel attention
        crbs = [f"restorer.body.{i}" for i in range(3)] + [f"estimator.body.{i}" for i in range(2)]
        return {f"{crb}.{part}" for crb in crbs for part in ("fusion", "body.3")} | {"restorer.upscale"}
    # restorer ng=2 groups of nb=2 DPCBs, estimator one group of est_nb=2: each DPCB's two paths
    dpcbs = [f"restorer.body.{g}.body.{b}" for g in range(2) for b in range(2)]
    dpcbs += [f"estimator.body.body.{b}" for b in range(2)]
    return {f"{dpcb}.{part}" for dpcb in dpcbs for part in ("body1", "body2")} | {"restorer.upscale"}


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_optimize_switches_on_exactly_the_known_modules_in_place(version: str) -> None:
    model = preset(version, 4)
    assert not is_optimized(model) and not fast_names(model)
    types = module_types(model)
    params = list(model.parameters())
    got = dan_blocks.optimize(model)
    assert got is model
    assert is_optimized(model)
    assert fast_names(model) == _expected_fast(version)
    # no class surgery: every sub-module keeps its type and name; the same Parameter objects
    assert module_types(model) == types
    assert all(a is b for a, b in zip(model.parameters(), params, strict=True))
    # the flag is an instance attribute: the classes' defaults stay off
    for cls in (TwoConv, DualPath, ChannelAttention, StretchConcat, Upsampler):
        assert cls.fast is False


def test_fast_forms_per_device_type() -> None:
    assert FAST_FORMS["cpu"] == {TwoConv, DualPath, ChannelAttention, StretchConcat, Upsampler}
    assert FAST_FORMS["cuda"] == frozenset()


def test_device_cuda_selects_no_cpu_fast_form_without_a_gpu() -> None:
    plain = preset("v2", 2)
    model = copy.deepcopy(plain)
    assert optimize(model, device="cuda") is model
    assert not fast_names(model)  # no CPU fast form switched on
    assert all(p.is_contiguous() for p in model.parameters())  # fp32 on CUDA stays NCHW (measured faster there)
    assert all(p.device.type == "cpu" for p in model.parameters())  # nothing moved
    assert is_optimized(model, device="cuda") and not is_optimized(model, device="cpu")
    optimize(model, device=torch.device("cpu"))
    assert fast_names(model) == _expected_fast("v2")


def test_no_class_assignment_or_runtime_class_creation_in_the_source() -> None:
    """dan_blocks/fast and dan_blocks/ops neither assign ``__class__`` nor make classes at run time."""
    files = sorted((PACKAGE / "fast").rglob("*.py")) + sorted((PACKAGE / "ops").rglob("*.py"))
    assert len(files) >= 4
    found: list[str] = []
    for path in files:
        source = path.read_text(encoding="utf-8")
        if "__class__ =" in source or "__class__=" in source:
            found.append(f"{path.name}: __class__ =")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name == "type" and len(node.args) == 3:
                    found.append(f"{path.name}:{node.lineno}: type(name, bases, dict)")
                sets_class = any(isinstance(a, ast.Constant) and a.value == "__class__" for a in node.args)
                if name == "new_class" or (name == "setattr" and sets_class):
                    found.append(f"{path.name}:{node.lineno}: {name}")
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AnnAssign | ast.AugAssign) else []
            for target in targets:
                if isinstance(target, ast.Attribute) and target.attr == "__class__":
                    found.append(f"{path.name}:{node.lineno}: .__class__ assigned")
    assert not found, found


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_optimize_is_idempotent(version: str) -> None:
    model = dan_blocks.optimize(preset(version, 3))
    types = module_types(model)
    flags = fast_names(model)
    tensors = {name: (t, t.data_ptr(), t.stride(), t.detach().clone())
               for name, t in chain(model.named_parameters(), model.named_buffers())}
    assert dan_blocks.optimize(model) is model
    assert module_types(model) == types and fast_names(model) == flags
    after = dict(chain(model.named_parameters(), model.named_buffers()))
    assert after.keys() == tensors.keys()
    for name, (tensor, ptr, stride, value) in tensors.items():
        assert after[name] is tensor and tensor.data_ptr() == ptr and tensor.stride() == stride, name
        assert torch.equal(tensor, value), name
    assert is_optimized(model)


def test_optimize_returns_its_argument_and_rejects_non_modules() -> None:
    block = CRB(8, 4, reduction=4)
    assert dan_blocks.optimize(block) is block and type(block) is CRB
    assert block.fusion.fast and block.body[3].fast
    other = nn.Linear(3, 2)  # nothing to switch on: returned as is
    assert dan_blocks.optimize(other) is other and type(other) is nn.Linear and is_optimized(other)
    for bad in (None, "model", {"restorer": 1}, torch.zeros(3)):
        with pytest.raises(TypeError, match=r"expects an nn\.Module"):
            dan_blocks.optimize(bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- state_dict, pickle, deepcopy


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_state_dict_is_unchanged_and_loads_both_ways(version: str) -> None:
    plain = preset(version, 2)
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    fast = dan_blocks.optimize(copy.deepcopy(plain))
    after = fast.state_dict()
    assert list(after) == list(before)
    for key, value in before.items():
        assert after[key].dtype == value.dtype and after[key].shape == value.shape, key
        assert torch.equal(after[key], value), key
    lr = random_lr(3)
    # optimised -> plain (strict): a plain model on other weights takes the optimised model's state
    reloaded = preset(version, 2, seed=99)
    reloaded.load_state_dict(after)
    # plain -> optimised (strict): an optimised model on other weights takes a plain model's state
    other = dan_blocks.optimize(preset(version, 2, seed=98))
    with torch.no_grad():
        stale = other(lr).sr  # its fold cache is filled with the old weights
    other.load_state_dict(plain.state_dict())
    assert fast_names(other) == _expected_fast(version)
    with torch.no_grad():
        ref = plain(lr).sr
        assert rel(stale, ref) > 1e-3
        assert rel(fast(lr).sr, ref) <= 1e-5
        assert rel(reloaded(lr).sr, ref) <= 1e-5
        assert rel(other(lr).sr, ref) <= 1e-5


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_optimised_model_pickles_and_deep_copies(version: str) -> None:
    plain = preset(version, 2, seed=5)
    model = dan_blocks.optimize(copy.deepcopy(plain))
    lr = random_lr(5, (1, 3, 11, 9))
    with torch.no_grad():
        expected = model(lr).sr  # after a call: the upsampler's fold cache is filled
        ref = plain(lr).sr
    assert rel(expected, ref) <= 1e-5
    for twin in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert module_types(twin) == module_types(model)
        assert fast_names(twin) == _expected_fast(version)
        assert all(p.is_contiguous(memory_format=CL) for p in twin.parameters() if p.dim() == 4)
        with torch.no_grad():
            got = twin(lr).sr
        assert torch.equal(got, expected)
        # the twin owns its weights: changing them changes the twin only (no cache shared with the original)
        with torch.no_grad():
            for p in twin.restorer.upscale.parameters():
                p.mul_(0.5)
            assert rel(twin(lr).sr, expected) > 1e-3
            assert torch.equal(model(lr).sr, expected)


def test_optimised_presets_unpickle_in_a_fresh_process(tmp_path: Path) -> None:
    path = tmp_path / "whole_model.pt"
    model = optimize(dan_v2(2, nb=1, ng=1, est_nb=1).eval())
    torch.save(model, path)
    code = (
        "import torch, dan_blocks.archs; "
        f"m = torch.load({str(path)!r}, weights_only=False); "
        "print(type(m).__name__, type(m) is dan_blocks.archs.DANv2, m.restorer.upscale.fast)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["DANv2", "True", "True"]


# ---------------------------------------------------------------- subclasses


class MyCRB(CRB):
    """A user's CRB that only appends a 1x1 conv (the old optimize() changed its output by 0.39 silently)."""

    def __init__(self, nf: int = 64, cond_nf: int = 10, reduction: int = 16) -> None:
        super().__init__(nf, cond_nf, reduction)
        self.extra = nn.Conv2d(nf, nf, 1)

    def forward(self, feat: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        out, cond = super().forward(feat, cond)
        return self.extra(out), cond


class MyRestorerV2(RestorerV2):
    """A user's RestorerV2 whose ``head2`` is a Sequential (the old optimize() crashed with AttributeError)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        nf, code_length = self.head1.out_channels, self.head2.in_channels
        self.head2 = nn.Sequential(nn.Conv2d(code_length, nf, 1), nn.LeakyReLU(0.2), nn.Conv2d(nf, nf, 1))


class MyTwoConv(TwoConv):
    """A subclass of a type with a fast form: optimize leaves it in its plain form."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) * 2.0


def _user_models() -> tuple[DAN, DAN]:
    """(a v1 DAN whose restorer has MyCRB blocks, a DAN with MyRestorerV2), randomised, in eval mode."""
    torch.manual_seed(0)
    k, c = 5, 4
    pca = PCAEncoder.from_matrix(torch.linalg.qr(torch.randn(k * k, c))[0])
    v1 = RestorerV1(nf=16, nb=2, scale=2, code_length=c, reduction=4)
    v1.body = nn.ModuleList([MyCRB(16, c, 4), MyCRB(16, c, 4)])
    first = DAN(v1, EstimatorV1(nf=8, num_blocks=1, scale=2, code_length=c, reduction=4), pca, loop=2)
    v2 = MyRestorerV2(nf=8, nb=2, ng=2, scale=2, code_length=c)
    second = DAN(v2, EstimatorV2(nf=8, num_blocks=2, scale=2, kernel_size=k, tail_nf=8), pca, loop=2)
    return randomised(first, 3).eval(), randomised(second, 4).eval()  # type: ignore[return-value]


def test_user_subclasses_come_out_of_optimize_with_their_outputs() -> None:
    for model, version in zip(_user_models(), ("v1", "v2"), strict=True):
        plain = copy.deepcopy(model)
        types = module_types(model)
        optimize(model)
        assert module_types(model) == types  # the user's classes stay theirs
        # the known modules inside them still get their (exact) fast forms
        if version == "v1":
            assert model.restorer.body[0].fusion.fast and model.restorer.body[1].body[3].fast
        else:
            assert isinstance(model.restorer.head2, nn.Sequential) and model.restorer.body[0].body[0].body2.fast
        lr = random_lr(7, (2, 3, 9, 11))
        with torch.no_grad():
            ref, out, sr = plain(lr), model(lr), model.super_resolve(lr)
        assert_same_structure(out, ref)
        for a, b in zip([*outputs(out), sr], [*outputs(ref), ref.sr], strict=True):
            assert rel(a, b) <= 1e-5, version
    # the user's forward really ran: MyCRB's extra conv matters (vs its own CRB forward)
    block = randomised(MyCRB(8, 4, reduction=4), 8)
    feat, code = torch.randn(2, 8, 6, 7), torch.randn(2, 4)
    with torch.no_grad():
        plain_out = copy.deepcopy(block)(feat, code)[0]
        optimize(block)
        assert rel(block(feat, code)[0], plain_out) <= 1e-5
        assert rel(CRB.forward(block, feat, code)[0], plain_out) > 1e-2


def test_strict_names_the_user_subclasses() -> None:
    v1, v2 = _user_models()
    before = [copy.deepcopy(v1), copy.deepcopy(v2)]
    for model, names in ((v1, ["restorer.body.0 (MyCRB)", "restorer.body.1 (MyCRB)"]),
                         (v2, ["restorer (MyRestorerV2)"])):
        assert skipped_by_optimize(model) == names
        with pytest.raises(ValueError, match="strict") as info:
            optimize(model, strict=True)
        for name in names:
            assert name in str(info.value)
        assert not fast_names(model)  # strict refused before changing anything
    for model, ref in zip((v1, v2), before, strict=True):
        assert all(p.is_contiguous() for p in model.parameters())
        assert module_types(model) == module_types(ref)
    # the releases' own classes (DANv1/DANv2 are dan-blocks subclasses of DAN) are known: nothing to name
    for version in ("v1", "v2"):
        assert skipped_by_optimize(preset(version, 2)) == []
        optimize(preset(version, 2), strict=True)


def test_subclass_of_a_fast_form_type_is_left_plain_and_named() -> None:
    plain = nn.Sequential(MyTwoConv(4, 6), TwoConv(6, 4))
    randomised(plain, 9)
    model = copy.deepcopy(plain)
    assert skipped_by_optimize(model) == ["0 (MyTwoConv)"]
    with pytest.raises(ValueError, match=r"0 \(MyTwoConv\)"):
        optimize(model, strict=True)
    optimize(model)
    assert model[0].fast is False and model[1].fast is True
    x = torch.randn(2, 4, 5, 7)
    with torch.no_grad():
        assert rel(model(x), plain(x)) <= 1e-5


def test_subclass_overriding_any_plain_method_keeps_its_behaviour() -> None:
    calls: list[str] = []

    class CountingDAN(DAN):
        def restore(self, lr: Tensor, code: Tensor) -> Tensor:
            calls.append("restore")
            return super().restore(lr, code)

    class Centred(EstimatorV2):
        def lr_mean(self, lr: Tensor) -> Tensor | None:
            return torch.full((lr.shape[0], 1, 1, 1), 0.5, dtype=lr.dtype, device=lr.device)

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
    with torch.no_grad():  # the override takes effect: the plain estimator's kernels differ
        uncentred = EstimatorV2(nf=32, num_blocks=2, scale=2).eval()
        uncentred.load_state_dict(model.estimator.state_dict())
        sr = out.srs[0]
        assert rel(uncentred(sr, lr), model.estimator(sr, lr)) > 1e-4
    assert calls == ["restore", "restore"]
    for a, b in zip([*out.srs, *out.kernels], [*ref.srs, *ref.kernels], strict=True):
        assert a is not None and b is not None and rel(a, b) <= 1e-5
    # the codes project a nearly uniform kernel (|code| ~ 1e-4 against kernel taps ~ 2e-3): their rounding is
    # the kernel's, so they are held to 1e-5 of the kernel's scale
    for a, b, kernel in zip(out.codes, ref.codes, ref.kernels, strict=True):
        assert kernel is not None and float((a - b).abs().max()) <= 1e-5 * float(kernel.abs().max())


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
    """In float64 the comparison measures the fast forms' algebra (the code as a bias, the 1x1 convs as matrix
    products, channels_last), not float32 rounding: loss, gradients and weights after each step agree to 1e-5
    (in practice to ~1e-15)."""
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
    off its float64 gradients, so two float32 runs cannot be held to 1e-5 there. Each weight after the steps is
    compared with the plain float64 run (within 1e-5 relative plus twice the plain float32 model's own error) and
    with the plain float32 run (1e-5). Each gradient is compared with the plain float64 run to 2e-3: with the
    restorer's code entering as a bias and channels_last weights, the v1 estimator's second-step gradients (sums
    over iterations of nearly cancelling terms) were measured 6.7e-4 off in float32 (plain float32: 2e-7), while
    the same fast forms agree with the plain model to 8e-16 in float64 (the test above): rounding, not algebra.
    A lost or wrong term is of order 1 and fails."""
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
            assert rel(g, r64) <= 2e-3 + 2 * rel(r32, r64)
    for p, r32, r64 in zip(fast.parameters(), plain_cl.parameters(), exact.parameters(), strict=True):
        assert rel(p, r32) <= 1e-5
        assert rel(p, r64) <= 1e-5 + 2 * rel(r32, r64)


# ---------------------------------------------------------------- caches and inference mode


def test_fold_cache_sees_new_weights_loaded_inside_inference_mode() -> None:
    # inference tensors have no version counter: the fold cache must still see an in-place load_state_dict
    lr = random_lr(3, (1, 3, 9, 11))
    with torch.inference_mode():
        model = optimize(preset("v2", 2, seed=1))
        model(lr)  # folds and caches
        new = preset("v2", 2, seed=2)
        model.load_state_dict(new.state_dict())
        assert rel(model(lr).sr, new(lr).sr) <= 1e-5


def test_inference_mode_forward_equals_no_grad() -> None:
    """Under inference mode (inference-tensor inputs, and parameters made inside it) the optimised model gives
    what it gives under no_grad, which is the plain model's."""
    plain = preset("v2", 2, seed=4)
    model = optimize(copy.deepcopy(plain))
    lr = random_lr(4, (1, 3, 12, 12))
    with torch.no_grad():
        expected = model(lr)
        reference = plain(lr)
    assert rel(expected.sr, reference.sr) <= 1e-5
    with torch.inference_mode():
        got = model(lr)
        sr_only = model.super_resolve(torch.rand(1, 3, 12, 12) * 0 + lr)  # an inference-tensor input
        built_inside = optimize(preset("v2", 2, seed=5))  # inference-tensor parameters
        built_inside.load_state_dict(model.state_dict())
        inside = built_inside(lr)
    for a in (got.sr, sr_only, inside.sr):
        assert rel(a, expected.sr) <= 1e-6


def test_nothing_holds_the_input_after_the_call() -> None:
    model = optimize(dan_v2(2, nb=1, ng=1, est_nb=1).eval())
    lr = torch.rand(1, 3, 8, 8).contiguous(memory_format=CL)
    ref = weakref.ref(lr)
    with torch.no_grad():
        model(lr)
        model.super_resolve(lr)
    del lr
    gc.collect()
    assert ref() is None  # no cache in the model keeps the LR (or anything made from it)


def test_sr_is_the_last_iterations_sr_after_optimize() -> None:
    model = optimize(preset("v1", 2))
    with torch.no_grad():
        out = model(random_lr(6, (1, 3, 8, 8)))
    assert out.sr is out.srs[-1]
