"""LR-only work is computed once per DAN call on the fast path, with the plain path's numbers."""

from __future__ import annotations

import pytest
import torch
from dan_blocks.archs.lr_memo import LRMemo
from torch import Tensor, nn

import dan_blocks  # noqa: F401
from dan_blocks.archs import DAN, EstimatorV2, RestorerV1, RestorerV2, dan_v1, dan_v2
from dan_blocks.archs.dan_arch import fast_path
from dan_blocks.layers import DPCB

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rel(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


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


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_lr_heads_run_once_per_call_on_the_fast_path(version: str) -> None:
    torch.manual_seed(0)
    model = (dan_v2(2) if version == "v2" else dan_v1(2)).eval()
    restorer = model.restorer
    head = restorer.head1 if isinstance(restorer, RestorerV2) else restorer.head
    calls = _count_calls(head)
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        out = model(lr)
        assert len(calls) == 1
        with fast_path(False):
            ref = model(lr)
        assert len(calls) == 1 + model.loop  # the plain path (release structure) recomputes every iteration
    for a, b in zip(out.srs, ref.srs, strict=True):
        assert rel(a, b) < 1e-5


def test_estimator_v2_lr_work_once_and_same_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo only skips repeated work: the fast path with it gives bit for bit what it gives without."""
    torch.manual_seed(1)
    model = dan_v2(2, est_input_norm=True).eval()
    assert isinstance(model.estimator, EstimatorV2)
    calls = _count_calls(model.estimator.head_LR)
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        out = model(lr)
        assert len(calls) == 1
        monkeypatch.setattr(model, "_memo", lambda lr, fast: None)
        ref = model(lr)
        assert len(calls) == 1 + model.loop
    for a, b, sa, sb in zip(out.kernels, ref.kernels, out.srs, ref.srs, strict=True):
        assert a is not None and b is not None
        assert torch.equal(a, b) and torch.equal(sa, sb)


def test_memo_gradients_equal_the_plain_path() -> None:
    """In training the shared LR tensors feed every iteration's graph; gradients accumulate as without sharing."""
    torch.manual_seed(2)
    model = dan_v2(2)
    lr = torch.rand(1, 3, 10, 10)
    model(lr).sr.sum().backward()
    fast_grad = model.restorer.head1.weight.grad.clone()
    model.zero_grad()
    with fast_path(False):
        model(lr).sr.sum().backward()
    assert rel(fast_grad, model.restorer.head1.weight.grad) < 1e-4


def test_restorer_without_memo_support_still_works() -> None:
    """A user's restorer with the plain (lr, code) signature gets no memo keyword."""

    class Plain(RestorerV1):
        accepts_lr_memo = False

        def forward(self, lr: Tensor, code: Tensor) -> Tensor:  # type: ignore[override]
            return super().forward(lr, code)

    torch.manual_seed(3)
    ref = dan_v2(2)
    model = DAN(Plain(nb=2, scale=2), ref.estimator, ref.pca).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 8, 8)).sr.shape == (1, 3, 16, 16)


def test_dpcb_rejects_a_basic_of_the_wrong_shape() -> None:
    block = DPCB(8, 8)
    with pytest.raises(ValueError, match="basic must have the features' shape"):
        block(torch.rand(1, 8, 5, 5), torch.rand(1, 8, 1, 1), torch.rand(1, 8, 4, 5))


def test_inference_mode_forward_equals_no_grad() -> None:
    """Inference tensors track no version counter: the memo and the upsampler's fold cache must not need one."""
    torch.manual_seed(4)
    model = dan_v2(2).eval()
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        expected = model(lr)
    with torch.inference_mode():
        got = model(lr)
        sr_only = model.super_resolve(torch.rand(1, 3, 12, 12) * 0 + lr)  # an inference-tensor input
        built_inside = dan_v2(2).eval()  # inference-tensor parameters
        built_inside.load_state_dict(model.state_dict())
        inside = built_inside(lr)
    for a in (got.sr, sr_only, inside.sr):
        assert torch.equal(a, expected.sr)
