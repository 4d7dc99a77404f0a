"""LR-only work is computed once per call of an optimised DAN, with the plain model's numbers.

The plain model (no memo: every iteration recomputes its LR heads) is the reference; the optimised copy must
call each LR head once per DAN call and give the same outputs and gradients.
"""

from __future__ import annotations

import copy
import gc
import weakref

import pytest
import torch
from torch import Tensor, nn

import dan_blocks.fast.archs as fast_archs
from dan_blocks import optimize
from dan_blocks.archs import DAN, EstimatorV2, RestorerV1, RestorerV2, dan_v1, dan_v2
from dan_blocks.fast import FastDAN, FastDPCB, FastEstimatorV2, FastRestorerV2, LRMemo
from dan_blocks.layers import DPCB

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CL = torch.channels_last


def rel(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def _small_v2(**kwargs: object) -> DAN:
    return dan_v2(2, nb=2, ng=2, est_nb=2, **kwargs).eval()  # type: ignore[arg-type]


def test_memo_computes_once_per_owner_and_lr() -> None:
    lr, other = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    memo, owner_a, owner_b = LRMemo(lr), nn.Identity(), nn.Identity()
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert memo.get(owner_a, lr, compute) == 1
    assert memo.get(owner_a, lr, compute) == 1  # cached
    assert memo.get(owner_b, lr, compute) == 2  # another module
    assert memo.get(owner_a, other, compute) == 3  # another LR tensor: never served from the memo
    lr.add_(1.0)  # changed in place since the memo was made
    assert memo.get(owner_a, lr, compute) == 4
    assert len(memo) == 2


def _count_calls(module: nn.Module) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def _lr_head(model: DAN) -> nn.Module:
    restorer = model.restorer
    return restorer.head1 if isinstance(restorer, RestorerV2) else restorer.head


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_lr_heads_run_once_per_call_when_optimised(version: str) -> None:
    torch.manual_seed(0)
    plain = (_small_v2() if version == "v2" else dan_v1(2, nb=2, est_nb=2).eval())
    fast = optimize(copy.deepcopy(plain))
    calls, plain_calls = _count_calls(_lr_head(fast)), _count_calls(_lr_head(plain))
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        out = fast(lr)
        assert len(calls) == 1
        ref = plain(lr)
        assert len(plain_calls) == plain.loop == 4  # the plain model recomputes every iteration
        fast(lr)
        assert len(calls) == 2  # one per call: nothing is carried over from the previous call
    for a, b in zip(out.srs, ref.srs, strict=True):
        assert rel(a, b) < 1e-5


class _NoMemo(LRMemo):
    """A memo that never remembers: every lookup computes afresh (the optimised model without the memo)."""

    def get(self, owner: nn.Module, lr: Tensor, compute):  # type: ignore[no-untyped-def, override]
        return compute()


def test_estimator_v2_lr_work_once_and_same_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo only skips repeated work: the optimised model with it gives bit for bit what it gives without."""
    torch.manual_seed(1)
    model = optimize(_small_v2(est_input_norm=True))
    assert isinstance(model.estimator, FastEstimatorV2) and isinstance(model.estimator, EstimatorV2)
    calls = _count_calls(model.estimator.head_LR)
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        out = model(lr)
        assert len(calls) == 1
        monkeypatch.setattr(fast_archs, "LRMemo", _NoMemo)
        ref = model(lr)
        assert len(calls) == 1 + model.loop
    for a, b, sa, sb in zip(out.kernels, ref.kernels, out.srs, ref.srs, strict=True):
        assert a is not None and b is not None
        assert torch.equal(a, b) and torch.equal(sa, sb)


def test_memo_gradients_equal_the_plain_model() -> None:
    """In training the shared LR tensors feed every iteration's graph; gradients accumulate as without sharing."""
    torch.manual_seed(2)
    plain = _small_v2().train()
    fast = optimize(copy.deepcopy(plain))
    lr = torch.rand(1, 3, 10, 10)
    calls = _count_calls(fast.restorer.head1)

    def loss(model: DAN) -> Tensor:  # the codes too, so that the estimator is trained (detach=True)
        out = model(lr)
        return out.sr.sum() + sum((code.square().sum() for code in out.codes), torch.zeros(()))

    loss(fast).backward()
    assert len(calls) == 1  # the memo is used with gradients too
    loss(plain).backward()
    assert rel(fast.restorer.head1.weight.grad, plain.restorer.head1.weight.grad) < 1e-4  # type: ignore[arg-type]
    assert rel(fast.estimator.head_LR[0].weight.grad, plain.estimator.head_LR[0].weight.grad) < 1e-4  # type: ignore[arg-type]


def test_memo_is_not_kept_after_the_call() -> None:
    model = optimize(_small_v2())
    lr = torch.rand(1, 3, 8, 8).contiguous(memory_format=CL)  # already channels_last: used as given
    ref = weakref.ref(lr)
    with torch.no_grad():
        model(lr)
        model.super_resolve(lr)
    del lr
    gc.collect()
    assert ref() is None  # nothing in the model holds the LR (or a memo made for it)


class _PlainSignature(RestorerV1):
    """A user's restorer with the plain (lr, code) signature: a ``memo=`` keyword would raise a TypeError."""

    def forward(self, lr: Tensor, code: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(lr, code)


def test_restorer_without_memo_support_still_works() -> None:
    """A user's restorer with the plain (lr, code) signature gets no memo keyword."""
    torch.manual_seed(3)
    ref = _small_v2()
    plain = DAN(_PlainSignature(nb=2, scale=2), ref.estimator, ref.pca).eval()
    model = optimize(copy.deepcopy(plain))
    assert isinstance(model, FastDAN) and type(model.restorer) is _PlainSignature
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        out = model(lr)
        sr = model.super_resolve(lr)
        expected = plain(lr)
    assert out.sr.shape == (1, 3, 16, 16)
    assert rel(out.sr, expected.sr) < 1e-5 and rel(sr, expected.sr) < 1e-5


def test_dpcb_rejects_a_basic_of_the_wrong_shape() -> None:
    block = optimize(DPCB(8, 8))
    assert type(block) is FastDPCB
    with pytest.raises(ValueError, match="basic must have the features' shape"):
        block(torch.rand(1, 8, 5, 5), torch.rand(1, 8, 1, 1), torch.rand(1, 8, 4, 5))
    with pytest.raises(TypeError):  # the plain block has no such argument
        DPCB(8, 8)(torch.rand(1, 8, 5, 5), torch.rand(1, 8, 1, 1), torch.rand(1, 8, 5, 5))


def test_inference_mode_forward_equals_no_grad() -> None:
    """Inference tensors track no version counter: the memo and the upsampler's fold cache must not need one."""
    torch.manual_seed(4)
    plain = _small_v2()
    model = optimize(copy.deepcopy(plain))
    assert isinstance(model.restorer, FastRestorerV2)
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        expected = model(lr)
        reference = plain(lr)
    assert rel(expected.sr, reference.sr) < 1e-5
    with torch.inference_mode():
        got = model(lr)
        sr_only = model.super_resolve(torch.rand(1, 3, 12, 12) * 0 + lr)  # an inference-tensor input
        built_inside = optimize(_small_v2())  # inference-tensor parameters
        built_inside.load_state_dict(model.state_dict())
        inside = built_inside(lr)
    for a in (got.sr, sr_only, inside.sr):
        assert torch.equal(a, expected.sr)
