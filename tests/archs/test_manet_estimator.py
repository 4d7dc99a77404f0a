"""MANetEstimator: per-pixel softmax kernels, LR-only mode, composition in DAN with both restorers, gradients."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import dan_blocks.basicsr  # noqa: F401  (makes basicsr importable, registers dan-blocks)
from dan_blocks.archs import DAN, MANetEstimator, RestorerV1, RestorerV2  # before basicsr: installs the shim
from dan_blocks.archs.registry import ARCH_REGISTRY, register_arch
from dan_blocks.layers import PCAEncoder

K, C, S = 5, 4, 2


def build_network(opt: dict) -> torch.nn.Module:
    from basicsr.archs import build_network as basicsr_build_network  # after dan_blocks (torchvision shim)

    return basicsr_build_network(opt)


def _pca() -> PCAEncoder:
    torch.manual_seed(0)
    return PCAEncoder.from_matrix(torch.linalg.qr(torch.randn(K * K, C))[0])


def _restorer(name: str) -> dict:
    extra = {"ng": 1} if name == "RestorerV2" else {"reduction": 4}
    return {"type": name, "nf": 8, "nb": 1, "scale": S, "code_length": C, **extra}


def _estimator(**kw: object) -> dict:
    return {"type": "MANetEstimator", "nf": 8, "num_blocks": 1, "kernel_size": K, "scale": S, **kw}


@pytest.mark.parametrize(("h", "w"), [(8, 10), (7, 9), (1, 3)])
def test_output_is_a_per_pixel_softmax(h: int, w: int) -> None:
    torch.manual_seed(0)
    est = MANetEstimator(nf=8, kernel_size=K, scale=S)
    out = est(torch.rand(2, 3, S * h, S * w), torch.rand(2, 3, h, w))
    assert out.shape == (2, K * K, h, w)
    assert (out >= 0).all()
    torch.testing.assert_close(out.sum(dim=1), torch.ones(2, h, w))
    assert out.flatten(2).std(dim=2).max() > 1e-6  # a map of different kernels, not one kernel broadcast


def test_sr_branch_vs_lr_only() -> None:
    torch.manual_seed(0)
    lr = torch.rand(1, 3, 6, 6)
    sr_a, sr_b = torch.rand(1, 3, 12, 12), torch.rand(1, 3, 12, 12)
    with_sr = MANetEstimator(nf=8, kernel_size=K, scale=S, use_sr=True)
    assert not torch.allclose(with_sr(sr_a, lr), with_sr(sr_b, lr))
    lr_only = MANetEstimator(nf=8, kernel_size=K, scale=S, use_sr=False)
    torch.testing.assert_close(lr_only(sr_a, lr), lr_only(None, lr))
    assert lr_only.scale is None and lr_only.head_HR is None
    with pytest.raises(ValueError, match="not 2x the LR"):
        with_sr(torch.rand(1, 3, 11, 12), lr)
    with pytest.raises(ValueError, match="needs the SR image"):
        with_sr(None, lr)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        with_sr(sr_a, torch.rand(1, 6, 6))


def test_sr_branch_is_a_strided_conv_like_head_hr() -> None:
    est = MANetEstimator(nf=8, kernel_size=K, scale=3)
    conv = est.head_HR
    assert conv is not None
    assert (conv.kernel_size, conv.stride, conv.padding) == ((13, 13), (3, 3), (6, 6))


@pytest.mark.parametrize("restorer", ["RestorerV1", "RestorerV2"])
def test_dan_composition_gives_per_pixel_codes(restorer: str) -> None:
    torch.manual_seed(0)
    pca = _pca()
    net = build_network({"type": "DAN", "restorer": _restorer(restorer), "estimator": _estimator(), "pca": pca,
                         "loop": 2})
    assert isinstance(net, DAN) and isinstance(net.estimator, MANetEstimator)
    lr = torch.rand(2, 3, 7, 9)
    out = net(lr)
    assert out.sr.shape == (2, 3, 14, 18)
    assert len(out.codes) == 2
    for code, kernel in zip(out.codes, out.kernels, strict=True):
        assert code.shape == (2, C, 7, 9)
        assert kernel is not None and kernel.shape == (2, K * K, 7, 9)
        # each pixel's code is the global-kernel encoding of that pixel's k x k kernel (row-major taps)
        y, x = 3, 5
        pixel_kernel = kernel[:, :, y, x].reshape(2, K, K)
        torch.testing.assert_close(code[:, :, y, x], pixel_kernel.flatten(1) @ pca.matrix)


@pytest.mark.parametrize("cls", [RestorerV1, RestorerV2])
def test_restorers_take_code_maps(cls: type) -> None:
    # a spatially constant code map must give the same SR as the global code it repeats
    torch.manual_seed(0)
    kwargs = {"ng": 1} if cls is RestorerV2 else {"reduction": 4}
    restorer = cls(nf=8, nb=1, scale=S, code_length=C, **kwargs)
    lr, code = torch.rand(2, 3, 6, 5), torch.randn(2, C)
    code_map = code[:, :, None, None].repeat(1, 1, 6, 5)
    torch.testing.assert_close(restorer(lr, code_map), restorer(lr, code))
    varying = code_map.clone()
    varying[:, :, :3] += 1.0
    assert not torch.allclose(restorer(lr, varying), restorer(lr, code))


def test_gradient_flow_through_the_alternation() -> None:
    torch.manual_seed(0)
    lr, hr = torch.rand(1, 3, 6, 6), torch.rand(1, 3, 12, 12)
    gt_map = torch.softmax(torch.randn(1, K * K, 6, 6), dim=1)
    for detach in (True, False):
        net = DAN(_restorer("RestorerV2"), _estimator(), _pca(), loop=2, detach=detach)
        out = net(lr)
        (out.sr - hr).abs().mean().backward()
        est_grads = [p.grad for p in net.estimator.parameters()]
        if detach:  # as released: the SR loss does not reach the estimator
            assert all(g is None or g.abs().sum() == 0 for g in est_grads)
        else:
            assert any(g is not None and g.abs().sum() > 0 for g in est_grads)
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.restorer.parameters())
    net = DAN(_restorer("RestorerV2"), _estimator(), _pca(), loop=2)
    (net(lr).kernels[-1] - gt_map).abs().mean().backward()
    for name, p in net.estimator.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_custom_estimator_type_from_a_dict() -> None:
    class TinyPixelEstimator(nn.Module):
        output_kind = "kernel"

        def __init__(self, kernel_size: int = 5) -> None:
            super().__init__()
            self.kernel_size = kernel_size
            self.conv = nn.Conv2d(3, kernel_size**2, 3, 1, 1)

        def forward(self, sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
            return self.conv(lr).softmax(dim=1)

    if "TinyPixelEstimator" not in ARCH_REGISTRY:
        ARCH_REGISTRY.register(TinyPixelEstimator)
    net = build_network({"type": "DAN", "restorer": _restorer("RestorerV1"),
                         "estimator": {"type": "TinyPixelEstimator", "kernel_size": K}, "pca": _pca(), "loop": 2})
    out = net(torch.rand(1, 3, 5, 4))
    assert out.codes[-1].shape == (1, C, 5, 4) and out.sr.shape == (1, 3, 10, 8)


def test_size_checks_and_lr_only_scale() -> None:
    with pytest.raises(ValueError, match="expected size 25, got 49"):
        DAN(_restorer("RestorerV2"), _estimator(kernel_size=7), _pca())
    with pytest.raises(ValueError, match="scale"):
        DAN(_restorer("RestorerV2"), _estimator(scale=4), _pca())
    # an LR-only estimator has no scale to disagree with
    net = DAN(_restorer("RestorerV2"), _estimator(scale=4, use_sr=False), _pca(), loop=1)
    assert net(torch.rand(1, 3, 4, 4)).sr.shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="odd"):
        MANetEstimator(kernel_size=4)


def test_registration_is_idempotent() -> None:
    assert ARCH_REGISTRY.get("MANetEstimator") is MANetEstimator
    register_arch(MANetEstimator)  # a second registration must not hit BasicSR's duplicate-name assertion
    assert ARCH_REGISTRY.get("MANetEstimator") is MANetEstimator


@pytest.mark.parametrize("use_sr", [True, False])
def test_estimator_scripts(use_sr: bool) -> None:
    torch.manual_seed(0)
    est = MANetEstimator(nf=8, kernel_size=K, scale=S, use_sr=use_sr)
    sr, lr = torch.rand(1, 3, 10, 14), torch.rand(1, 3, 5, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated upstream, still supported
        scripted = torch.jit.script(est)
    torch.testing.assert_close(scripted(sr, lr), est(sr, lr))
