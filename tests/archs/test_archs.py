"""DAN v1/v2 modules, the generic alternation, presets and registries."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import dan_blocks
import dan_blocks.basicsr
from dan_blocks import DAN, DANv1, DANv2, EstimatorV1, EstimatorV2, RestorerV1, RestorerV2, dan_v1, dan_v2
from dan_blocks.archs import (
    DANOutput,
    EstimatorProtocol,
    RestorerProtocol,
    available_default_pcas,
    default_pca,
)
from dan_blocks.archs.registry import register_arch
from dan_blocks.layers import PCAEncoder
from dan_blocks.timm import TIMM_MODEL_NAMES


def _pca(k: int = 5, c: int = 4, seed: int = 0) -> PCAEncoder:
    gen = torch.Generator().manual_seed(seed)
    return PCAEncoder.fit(torch.rand(60, k, k, generator=gen), c)


SMALL_V1 = {"nf": 8, "nb": 2, "est_nf": 8, "est_nb": 1, "reduction": 4}
SMALL_V2 = {"nf": 8, "nb": 1, "ng": 2, "est_nf": 8, "est_nb": 1, "est_tail_nf": 8}


def _small(version: int, scale: int, loop: int = 2, **kw: object) -> DAN:
    kw.setdefault("pca", _pca())
    kw.setdefault("kernel_size", 5)
    kw.setdefault("code_length", 4)
    if version == 1:
        return dan_v1(scale, loop=loop, **{**SMALL_V1, **kw})  # type: ignore[arg-type]
    return dan_v2(scale, loop=loop, **{**SMALL_V2, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "version,scale", [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (2, 3), (2, 4), (2, 8)]
)
@pytest.mark.parametrize("loop", [1, 3])
def test_shapes_every_scale_and_loop(version: int, scale: int, loop: int) -> None:
    torch.manual_seed(0)
    model = _small(version, scale, loop)
    out = model(torch.rand(2, 3, 6, 5))
    assert isinstance(out, DANOutput)
    assert out.sr.shape == (2, 3, 6 * scale, 5 * scale)
    assert len(out.srs) == len(out.codes) == len(out.kernels) == loop
    assert all(c.shape == (2, 4) for c in out.codes)
    if version == 1:  # codes reconstructed into kernels: m + (c - m P) P^T (m = the fitted PCA's training mean)
        matrix, mean = model.pca.matrix, model.pca.kernel_mean
        assert model.pca.has_kernel_mean
        for code, kernel in zip(out.codes, out.kernels, strict=True):
            expected = (mean + (code - mean @ matrix) @ matrix.T).reshape(2, 5, 5)
            torch.testing.assert_close(kernel, expected)
    else:
        assert all(k is not None and k.shape == (2, 5, 5) for k in out.kernels)
        torch.testing.assert_close(out.kernels[-1].sum(dim=(1, 2)), torch.ones(2))
    assert (model.scale, model.kernel_size, model.code_length, model.loop) == (scale, 5, 4, loop)


def test_v2_code_is_flattened_kernel_times_matrix_and_init_is_center_row() -> None:
    torch.manual_seed(1)
    pca = _pca(seed=3)
    model = _small(2, 2, 3, pca=pca)
    out = model(torch.rand(1, 3, 4, 4))
    matrix = pca.matrix
    for kernel, code in zip(out.kernels, out.codes, strict=True):
        expected = torch.einsum("bij,ijc->bc", kernel, matrix.view(5, 5, 4))
        torch.testing.assert_close(code, expected)
    # the dirac at the centre tap (index 12 of 25) selects row 12 of P
    torch.testing.assert_close(model.init_code[0], matrix[12])


def test_first_iteration_uses_init_code_and_later_ones_the_estimate() -> None:
    torch.manual_seed(2)
    model = _small(2, 2, 2)
    lr = torch.rand(1, 3, 5, 5)
    out = model(lr)
    torch.testing.assert_close(out.srs[0], model.restorer(lr, model.init_code))
    torch.testing.assert_close(out.srs[1], model.restorer(lr, out.codes[0]))
    torch.testing.assert_close(out.codes[1], model.pca.encode(model.estimator(out.srs[1], lr).view(1, 5, 5)))


def test_determinism() -> None:
    lr = torch.rand(2, 3, 5, 6)
    torch.manual_seed(7)
    a = _small(2, 3, 2)
    torch.manual_seed(7)
    b = _small(2, 3, 2)
    for x, y in zip(a(lr).srs + a(lr).codes, b(lr).srs + b(lr).codes, strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("version", [1, 2])
def test_gradient_flow_detach(version: int) -> None:
    lr = torch.rand(1, 3, 5, 5)
    torch.manual_seed(0)
    detached = _small(version, 2, 2, detach=True)
    torch.manual_seed(0)
    attached = _small(version, 2, 2, detach=False)
    for model, restorer_gets_code_grad in ((detached, False), (attached, True)):
        out = model(lr)
        out.codes[-1].sum().backward()
        head = model.restorer.head if version == 1 else model.restorer.head1
        grad = head.weight.grad
        if restorer_gets_code_grad:
            assert grad is not None and grad.abs().sum() > 0
        else:
            assert grad is None or grad.abs().sum() == 0
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.estimator.parameters())
        model.zero_grad(set_to_none=True)
        model(lr).sr.mean().backward()
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


def test_estimator_outputs() -> None:
    est = EstimatorV2(nf=8, num_blocks=1, scale=2, kernel_size=7, tail_nf=8)
    k = est(torch.rand(2, 3, 10, 8), torch.rand(2, 3, 5, 4))
    assert k.shape == (2, 49) and torch.all(k > 0)
    torch.testing.assert_close(k.sum(1), torch.ones(2))
    code = EstimatorV1(nf=8, num_blocks=1, scale=3, code_length=6, reduction=4)(
        torch.rand(1, 3, 12, 9), torch.rand(1, 3, 4, 3)
    )
    assert code.shape == (1, 6)
    with pytest.raises(ValueError, match="not 2x the LR"):
        est(torch.rand(2, 3, 9, 8), torch.rand(2, 3, 5, 4))


def test_protocols_and_attributes() -> None:
    assert isinstance(RestorerV1(nb=1), RestorerProtocol) and isinstance(
        RestorerV2(nb=1, ng=1), RestorerProtocol
    )
    assert isinstance(EstimatorV1(), EstimatorProtocol) and isinstance(EstimatorV2(), EstimatorProtocol)
    assert EstimatorV1.output_kind == "code" and EstimatorV2.output_kind == "kernel"


class PixelKernelEstimator(nn.Module):
    """A spatially variant estimator (what the contract allows): softmax over k² per LR pixel."""

    output_kind = "kernel"

    def __init__(self, kernel_size: int = 5, scale: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.scale = scale
        self.conv = nn.Conv2d(6, kernel_size * kernel_size, 3, 1, 1)

    def forward(self, sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        down = nn.functional.avg_pool2d(sr, self.scale)
        return torch.softmax(self.conv(torch.cat([down, lr], 1)), dim=1)


register_arch(PixelKernelEstimator)


@pytest.mark.parametrize("restorer", ["RestorerV1", "RestorerV2"])
def test_per_pixel_kernels_from_option_dicts(restorer: str) -> None:
    from basicsr.archs import build_network

    pca = _pca()
    sizes = {"nf": 8, "nb": 1} | ({"ng": 1} if restorer == "RestorerV2" else {"reduction": 4})
    model = build_network(
        {
            "type": "DAN",
            "restorer": {"type": restorer, "scale": 2, "code_length": 4, **sizes},
            "estimator": {"type": "PixelKernelEstimator", "kernel_size": 5, "scale": 2},
            "pca": pca,
            "loop": 2,
        }
    )
    out = model(torch.rand(2, 3, 6, 4))
    assert out.kernels[0].shape == (2, 25, 6, 4) and out.codes[0].shape == (2, 4, 6, 4)
    expected = torch.einsum("bthw,tc->bchw", out.kernels[1], pca.matrix)
    torch.testing.assert_close(out.codes[1], expected)
    assert out.sr.shape == (2, 3, 12, 8)


def test_registries() -> None:
    from basicsr.archs import build_network
    from basicsr.utils.registry import ARCH_REGISTRY

    for name in ("DAN", "DANv1", "DANv2", "EstimatorV1", "EstimatorV2", "RestorerV1", "RestorerV2"):
        assert name in ARCH_REGISTRY
    register_arch(DANv2)  # idempotent: BasicSR would assert on a plain second register()
    net = build_network(
        {
            "type": "DANv2",
            "scale": 2,
            "kernel_size": 5,
            "code_length": 4,
            "pca": _pca(),
            **SMALL_V2,
            "loop": 1,
        }
    )
    assert isinstance(net, DANv2) and net.scale == 2


@pytest.mark.skipif(
    "setting1_k21_c10.pt" not in available_default_pcas(), reason="default PCA not generated yet"
)
def test_default_pca_and_option_file_preset() -> None:
    from basicsr.archs import build_network

    pca = default_pca(21, 10, 1)
    assert (pca.kernel_size, pca.code_length, pca.center) == (21, 10, False)
    net = build_network({"type": "DANv2", "scale": 4})
    assert torch.equal(net.pca.matrix, pca.matrix)
    assert sum(p.numel() for p in net.parameters()) == 4_707_708
    via_dict = DAN(
        RestorerV2(nb=1, ng=1),
        EstimatorV2(num_blocks=1),
        {"kernel_size": 21, "code_length": 10, "setting": 1},
    )
    assert torch.equal(via_dict.pca.matrix, pca.matrix)


def test_default_pca_missing_names_file_and_command() -> None:
    with pytest.raises(FileNotFoundError) as err:
        default_pca(13, 7, 2)
    text = str(err.value)
    assert (
        "setting2_k13_c7.pt" in text
        and "dan-blocks fit-pca --kernel-size 13 --code-length 7 --setting 2" in text
    )
    for name in available_default_pcas():
        assert name in text


def test_size_mismatch_errors() -> None:
    with pytest.raises(ValueError, match=r"expected size 25, got 49"):
        DAN(
            RestorerV2(nf=8, nb=1, ng=1, code_length=4),
            EstimatorV2(nf=8, num_blocks=1, kernel_size=7),
            _pca(),
        )
    with pytest.raises(ValueError, match=r"expected size 4, got 10"):
        DAN(
            RestorerV2(nf=8, nb=1, ng=1, code_length=10),
            EstimatorV2(nf=8, num_blocks=1, kernel_size=5),
            _pca(),
        )
    with pytest.raises(ValueError, match="output_kind"):
        DAN(RestorerV2(nf=8, nb=1, ng=1, code_length=4), nn.Conv2d(3, 3, 1), _pca())
    with pytest.raises(KeyError, match="NoSuchEstimator"):
        DAN({"type": "RestorerV2"}, {"type": "NoSuchEstimator"}, _pca())
    with pytest.raises(ValueError, match=r"code must be \(B=1, 4\)"):
        RestorerV2(nf=8, nb=1, ng=1, code_length=4)(torch.rand(1, 3, 4, 4), torch.rand(1, 5))
    with pytest.raises(ValueError, match="scale 1, 3 or a power of two"):
        RestorerV1(nb=1, scale=5)


def test_pca_specs(tmp_path) -> None:
    pca = _pca()
    path = tmp_path / "p.pt"
    pca.save(path)
    for spec in (pca, pca.matrix, pca.matrix[None], str(path), {"path": path}):
        model = DAN(
            RestorerV2(nf=8, nb=1, ng=1, scale=2, code_length=4),
            EstimatorV2(nf=8, num_blocks=1, scale=2, kernel_size=5),
            spec,
        )
        torch.testing.assert_close(model.pca.matrix, pca.matrix)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        DAN(RestorerV2(code_length=4), EstimatorV2(kernel_size=5), str(tmp_path / "missing.pt"))


@pytest.mark.parametrize("name", TIMM_MODEL_NAMES)
def test_timm_registry(name: str) -> None:
    import timm

    version, scale = int(name[5]), int(name[-1])
    small = SMALL_V1 if version == 1 else SMALL_V2
    model = timm.create_model(name, pca=_pca(), kernel_size=5, code_length=4, loop=1, **small)
    assert isinstance(model, DANv1 if version == 1 else DANv2) and model.scale == scale
    with pytest.raises(ValueError, match="pretrained=True is not supported"):
        timm.create_model(name, pretrained=True)


def test_full_size_preset_parameter_counts() -> None:
    # (the other released sizes are checked through load_official_checkpoint in test_official.py)
    v1 = dan_v1(3, pca=torch.linalg.qr(torch.randn(441, 10))[0])
    assert sum(p.numel() for p in v1.parameters()) == 4_366_439
    setting2 = dan_v2(
        4, kernel_size=31, code_length=15, setting=2, pca=torch.linalg.qr(torch.randn(961, 15))[0]
    )
    assert sum(p.numel() for p in setting2.parameters()) == 4_741_828


def test_top_level_exports() -> None:
    for name in ("DAN", "DANOutput", "dan_v1", "dan_v2", "load_official_checkpoint"):
        assert hasattr(dan_blocks, name)
