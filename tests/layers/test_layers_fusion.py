"""The fusion registry and the fusions, each against its equation written out here with torch.nn.functional on
the module's own weights (never the module's output captured once), and every fusion through the whole life of a
restorer: option dict, a training step, save/load, optimize() and exact tiling."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dan_blocks import load_model, optimize, upscale
from dan_blocks.archs import arch_options, build_arch
from dan_blocks.formats import save_model
from dan_blocks.layers import CRB, DPCB, RRDBSFT
from dan_blocks.layers.fusion import (
    SFT,
    CodeAttention,
    DAConv,
    DualPath,
    FiLM,
    SFTLayer,
    StretchConcat,
    create_fusion,
    get_fusion,
    list_fusions,
    register_fusion,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FUSIONS = ["stretch_concat", "dual_path", "sft", "sft_concat", "da_conv", "film", "code_attention"]


def rel(a: Tensor, b: Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-12))


def randomise(module: nn.Module, seed: int = 0, std: float = 0.1) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return module


def test_registry_lists_the_family_and_a_new_fusion() -> None:
    assert set(FUSIONS) <= set(list_fusions())
    assert list_fusions() == sorted(list_fusions())
    assert get_fusion("sft") is SFT and get_fusion(SFT) is SFT
    with pytest.raises(KeyError, match="stretch_concat"):
        get_fusion("strech_concat")
    with pytest.raises(TypeError, match="registered name"):
        get_fusion(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"takes no argument 'hiddn'.*hidden"):
        create_fusion("sft", 8, 4, {"hiddn": 3})


def test_registering_a_taken_name_is_refused() -> None:
    class Other(StretchConcat):
        pass

    with pytest.raises(ValueError, match="already taken"):
        register_fusion("sft")(Other)


def test_stretch_concat_crb_equals_concat_then_the_crb_body() -> None:
    block = randomise(CRB(8, 3, reduction=4)).eval()
    feat, code = torch.randn(2, 8, 5, 7), torch.randn(2, 3)
    stretched = code[:, :, None, None].expand(-1, -1, 5, 7)
    joined = torch.cat((feat, stretched), 1)
    w1, w2 = block.body[0], block.body[2]
    res = F.conv2d(F.leaky_relu(F.conv2d(joined, w1.weight, w1.bias, padding=1), 0.2), w2.weight, w2.bias, padding=1)
    ca = block.body[3].body
    gate = torch.sigmoid(F.conv2d(F.leaky_relu(F.conv2d(res.mean((2, 3), keepdim=True), ca[0].weight, ca[0].bias),
                                               0.2), ca[2].weight, ca[2].bias))
    out, code_out = block(feat, code)
    assert rel(out, feat + res * gate) < 1e-6 and code_out is code
    assert sorted(k for k in block.state_dict()) == sorted(
        ["body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias", "body.3.body.0.weight",
         "body.3.body.0.bias", "body.3.body.2.weight", "body.3.body.2.bias"]
    )  # the release's CRB_Layer keys: the fusion holds no parameters


def _two_1x1(x: Tensor, seq: nn.Sequential, slope: float = 0.2) -> Tensor:
    return F.conv2d(F.leaky_relu(F.conv2d(x, seq[0].weight, seq[0].bias), slope), seq[2].weight, seq[2].bias)


@pytest.mark.parametrize("code_shape", [(2, 3), (2, 3, 5, 7)])
def test_sft_equals_f_times_one_plus_gamma_plus_beta(code_shape: tuple[int, ...]) -> None:
    fusion = randomise(SFT(8, 3, hidden=4))
    feat, code = torch.randn(2, 8, 5, 7), torch.randn(*code_shape)
    code_map = code if code.dim() == 4 else code[:, :, None, None]
    gamma, beta = _two_1x1(code_map, fusion.gamma), _two_1x1(code_map, fusion.beta)
    out, code_out = fusion(feat, code)
    assert rel(out, feat * (1 + gamma) + beta) < 1e-6 and code_out is code
    with torch.no_grad():
        for p in fusion.parameters():
            p.zero_()
    assert torch.equal(fusion(feat, code)[0], feat)  # gamma = beta = 0: the identity


def test_sft_concat_is_manets_sigmoid_layer() -> None:
    fusion = randomise(SFTLayer(8, 3, hidden=4))
    feat, code = torch.randn(2, 8, 5, 7), torch.randn(2, 3, 5, 7)
    z = torch.cat((feat, code), 1)

    def branch(seq: nn.Sequential) -> Tensor:
        h = F.leaky_relu(F.conv2d(z, seq[0].weight, seq[0].bias, padding=1), 0.2)
        return F.conv2d(h, seq[2].weight, seq[2].bias, padding=1)

    assert rel(fusion(feat, code)[0], feat * torch.sigmoid(branch(fusion.scale)) + branch(fusion.shift)) < 1e-6


def test_dual_path_dpcb_equals_the_papers_block() -> None:
    block = randomise(DPCB(8, 8, 3, 1))
    feat, cond = torch.randn(2, 8, 5, 7), torch.randn(2, 8, 1, 1)
    b1 = F.conv2d(F.leaky_relu(F.conv2d(feat, block.body1[0].weight, block.body1[0].bias, padding=1), 0.2),
                  block.body1[2].weight, block.body1[2].bias, padding=1)
    b2 = _two_1x1(cond, block.body2)
    out, cond_out = block(feat, cond)
    assert rel(out, feat + b1 * b2) < 1e-6 and rel(cond_out, cond + b2) < 1e-6
    assert isinstance(block.body2, DualPath) and "body2.0.weight" in block.state_dict()


def test_da_conv_equals_dasrs_formula_and_its_key_layout() -> None:
    fusion = randomise(DAConv(64, 64, ksize=3, reduction=8), std=0.05)
    shapes = {k: tuple(v.shape) for k, v in fusion.state_dict().items()}
    assert shapes == {  # DASR's DA_conv(64, 64, 3, 8) keys and shapes (dasr-reference.md)
        "kernel.0.weight": (64, 64), "kernel.2.weight": (576, 64), "conv.weight": (64, 64, 1, 1),
        "conv.bias": (64,), "ca.conv_du.0.weight": (8, 64, 1, 1), "ca.conv_du.2.weight": (64, 8, 1, 1),
    }
    assert sum(p.numel() for p in fusion.parameters()) == 46144
    feat, r = torch.randn(2, 64, 6, 5), torch.randn(2, 64)
    expected = []
    for b in range(2):  # one sample at a time, the depthwise kernel laid out channel by channel
        hidden = F.leaky_relu(r[b] @ fusion.kernel[0].weight.T, 0.1)
        w = (hidden @ fusion.kernel[2].weight.T).reshape(64, 1, 3, 3)
        o = F.leaky_relu(F.conv2d(feat[b : b + 1], w, padding=1, groups=64), 0.1)
        o = F.conv2d(o, fusion.conv.weight, fusion.conv.bias)
        a = torch.sigmoid(F.conv2d(F.leaky_relu(F.conv2d(r[b, :, None, None], fusion.ca.conv_du[0].weight), 0.1),
                                   fusion.ca.conv_du[2].weight))
        expected.append(o + feat[b : b + 1] * a)
    assert rel(fusion(feat, r)[0], torch.cat(expected)) < 1e-5
    with pytest.raises(ValueError, match="global code"):
        fusion(feat, torch.randn(2, 64, 6, 5))


def test_film_and_code_attention_equal_their_equations() -> None:
    film = randomise(FiLM(8, 3, hidden=5))
    feat, code = torch.randn(2, 8, 4, 6), torch.randn(2, 3)
    gb = _two_1x1(code[:, :, None, None], film.mlp)
    assert rel(film(feat, code)[0], feat * gb[:, :8] + gb[:, 8:]) < 1e-6
    assert torch.equal(FiLM(8, 3)(feat, code)[0], feat)  # a new FiLM starts as the identity

    att = randomise(CodeAttention(8, 3, tokens=2, dim=4))
    k = (code @ att.keys.weight.T + att.keys.bias).reshape(2, 2, 4)
    v = (code @ att.values.weight.T + att.values.bias).reshape(2, 2, 8)
    q = F.conv2d(feat, att.query.weight, att.query.bias)  # (B, 4, H, W)
    logits = torch.einsum("bdhw,btd->bthw", q, k) / math.sqrt(4)
    read = torch.einsum("bthw,btc->bchw", logits.softmax(dim=1), v)
    assert rel(att(feat, code)[0], feat + F.conv2d(read, att.out.weight, att.out.bias)) < 1e-5


def test_wider_fusions_get_a_projection_and_rrdbsft_takes_any_fusion() -> None:
    block = DPCB(8, 8, fusion="stretch_concat")
    assert block.proj is not None and block.proj.in_channels == 16
    rrdb = RRDBSFT(8, 4, code_length=3, fusion="film")
    out, _ = rrdb(torch.randn(1, 8, 5, 5), torch.randn(1, 3))
    assert out.shape == (1, 8, 5, 5)


def _restorer_opt(kind: str, fusion: str) -> dict:
    if kind == "RestorerV1":
        return {"type": "RestorerV1", "nf": 16, "nb": 2, "scale": 2, "code_length": 10, "reduction": 4,
                "fusion": fusion}
    return {"type": "RestorerV2", "nf": 16, "nb": 2, "ng": 1, "scale": 2, "code_length": 10, "residual": "add",
            "fusion": fusion}


ESTIMATORS = {
    "code": {"type": "EstimatorV1", "nf": 16, "num_blocks": 1, "scale": 2, "code_length": 10, "reduction": 4},
    "kernel": {"type": "EstimatorV2", "nf": 8, "num_blocks": 1, "scale": 2, "kernel_size": 21, "tail_nf": 8,
               "residual": "add"},
}


@pytest.mark.parametrize("estimator", ["code", "kernel"])
@pytest.mark.parametrize("restorer", ["RestorerV1", "RestorerV2"])
@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_builds_trains_saves_loads_optimises_and_tiles(
    fusion: str, restorer: str, estimator: str, tmp_path
) -> None:
    torch.manual_seed(0)
    opt = {"type": "DAN", "restorer": _restorer_opt(restorer, fusion), "estimator": ESTIMATORS[estimator],
           "pca": {"kernel_size": 21, "code_length": 10, "setting": 1}, "loop": 2}
    model = build_arch(opt)
    randomise(model, std=0.05)
    lr = torch.rand(2, 3, 12, 10)
    hr = torch.rand(2, 3, 24, 20)
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)
    loss = F.l1_loss(model(lr).sr, hr)  # one training step
    loss.backward()
    optimiser.step()
    assert torch.isfinite(loss)
    model.eval()
    path = tmp_path / "m.pth"
    save_model(model, path)
    loaded = load_model(path).eval()
    assert arch_options(loaded)["restorer"]["fusion"] == fusion
    with torch.no_grad():
        ref = model(lr).sr
        assert rel(loaded(lr).sr, ref) == 0.0
        fast = optimize(copy.deepcopy(model))
        assert rel(fast(lr).sr, ref) <= 1e-5
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # every part tiles: no "runs untiled" warning
            tiled_sr = upscale(copy.deepcopy(model), lr, tile_size=5).sr
    assert rel(tiled_sr, ref) <= 1e-5


@pytest.mark.parametrize("fusion", FUSIONS)
def test_rrdb_sft_restorer_takes_every_fusion(fusion: str, tmp_path) -> None:
    torch.manual_seed(0)
    opt = {"type": "DAN", "restorer": {"type": "RRDBSFTRestorer", "nf": 8, "nb": 1, "gc": 4, "scale": 2,
                                       "code_length": 10, "fusion": fusion},
           "estimator": ESTIMATORS["kernel"], "pca": {"kernel_size": 21, "code_length": 10, "setting": 1}, "loop": 2}
    model = randomise(build_arch(opt), std=0.05).eval()
    lr = torch.rand(1, 3, 9, 11)
    path = tmp_path / "m.pth"
    save_model(model, path)
    with torch.no_grad():
        ref = model(lr).sr
        assert rel(load_model(path).eval()(lr).sr, ref) == 0.0
        assert rel(optimize(copy.deepcopy(model))(lr).sr, ref) <= 1e-5
