"""IKC: the release's three files (key layouts built here from the reference facts, seeded random weights, saved in
torch's legacy format as the release was) load alone through load_model, strictly; the assembled loop gives the
release's per-step SR and codes (an independent loop written here from the equations)."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from dan_blocks import load_model
from dan_blocks.archs.ikc_arch import IKC, SFTMD, IKCCorrector, IKCPredictor, best_step_by_psnr
from dan_blocks.formats.ikc_files import ikc_from_release, to_ikc_state_dict


def conv_keys(shapes: dict, prefix: str, cout: int, cin: int, k: int) -> None:
    shapes[prefix + "weight"] = (cout, cin, k, k)
    shapes[prefix + "bias"] = (cout,)


def sft_keys(shapes: dict, prefix: str, nf: int = 64, para: int = 10) -> None:
    for branch in ("mul", "add"):
        conv_keys(shapes, f"{prefix}{branch}_conv1.", 32, nf + para, 3)
        conv_keys(shapes, f"{prefix}{branch}_conv2.", nf, 32, 3)


def block_keys(shapes: dict, prefix: str, para: int = 10) -> None:
    sft_keys(shapes, prefix + "sft1.", 64, para)
    sft_keys(shapes, prefix + "sft2.", 64, para)
    conv_keys(shapes, prefix + "conv1.", 64, 64, 3)
    conv_keys(shapes, prefix + "conv2.", 64, 64, 3)


def sftmd_shapes(scale: int, nb: int = 16, para: int = 10) -> dict:
    shapes: dict = {}
    conv_keys(shapes, "conv1.", 64, 3, 3)
    conv_keys(shapes, "conv2.", 64, 64, 3)
    conv_keys(shapes, "conv3.", 64, 64, 3)
    for i in range(nb):
        block_keys(shapes, f"sft_branch.{i}.", 10)  # built with the defaults whatever the code length
    for i in range(1, nb + 1):
        block_keys(shapes, f"SFT-residual{i}.", para)
    sft_keys(shapes, "sft.", 64, para)
    conv_keys(shapes, "conv_mid.", 64, 64, 3)
    if scale == 4:
        conv_keys(shapes, "upscale.0.", 256, 64, 3)
        conv_keys(shapes, "upscale.3.", 256, 64, 3)
    else:
        conv_keys(shapes, "upscale.0.", 64 * scale * scale, 64, 3)
    conv_keys(shapes, "conv_output.", 3, 64, 9)
    return shapes


def predictor_shapes() -> dict:
    shapes: dict = {}
    for i, (cin, cout) in enumerate([(3, 64), (64, 64), (64, 64), (64, 64), (64, 64), (64, 10)]):
        conv_keys(shapes, f"ConvNet.{2 * i}.", cout, cin, 5)
    return shapes


def corrector_shapes() -> dict:
    shapes: dict = {}
    for i in range(7):
        conv_keys(shapes, f"ConvNet.{2 * i}.", 64, 3 if i == 0 else 64, 5)
    shapes["code_dense.0.weight"], shapes["code_dense.0.bias"] = (64, 10), (64,)
    shapes["code_dense.2.weight"], shapes["code_dense.2.bias"] = (64, 64), (64,)
    conv_keys(shapes, "global_dense.0.", 128, 128, 1)
    conv_keys(shapes, "global_dense.2.", 64, 128, 1)
    conv_keys(shapes, "global_dense.4.", 10, 64, 1)
    return shapes


def fill(shapes: dict, seed: int, std: float = 0.03) -> dict:
    gen = torch.Generator().manual_seed(seed)
    state = {k: std * torch.randn(s, generator=gen) for k, s in shapes.items()}
    if "conv_output.bias" in state:
        state["conv_output.bias"] = torch.full((3,), 0.5)  # keep the clamped output inside (0, 1)
    return state


# ---- the release's networks written from the equations --------------------------------------------------------
def lrelu(x):
    return F.leaky_relu(x, 0.2)


def conv(sd, p, x, stride=1):
    w = sd[p + "weight"]
    return F.conv2d(x, w, sd[p + "bias"], stride, w.shape[-1] // 2)


def sft(sd, p, f, cmap):
    z = torch.cat([f, cmap], 1)
    scale = torch.sigmoid(conv(sd, p + "mul_conv2.", lrelu(conv(sd, p + "mul_conv1.", z))))
    shift = conv(sd, p + "add_conv2.", lrelu(conv(sd, p + "add_conv1.", z)))
    return f * scale + shift


def ref_sftmd(sd, lr, code, scale, nb=16):
    b, _, h, w = lr.shape
    cmap = code.view(b, -1, 1, 1).expand(b, code.shape[1], h, w)
    f0 = conv(sd, "conv3.", lrelu(conv(sd, "conv2.", lrelu(conv(sd, "conv1.", lr)))))
    f = f0
    for i in range(1, nb + 1):
        p = f"SFT-residual{i}."
        a = F.relu(sft(sd, p + "sft1.", f, cmap))
        bb = F.relu(sft(sd, p + "sft2.", conv(sd, p + "conv1.", a), cmap))
        f = f + conv(sd, p + "conv2.", bb)
    g = conv(sd, "conv_mid.", sft(sd, "sft.", f + f0, cmap))
    if scale == 4:
        g = lrelu(F.pixel_shuffle(conv(sd, "upscale.0.", g), 2))
        g = lrelu(F.pixel_shuffle(conv(sd, "upscale.3.", g), 2))
    else:
        g = lrelu(F.pixel_shuffle(conv(sd, "upscale.0.", g), scale))
    return conv(sd, "conv_output.", g).clamp(0, 1)


def ref_predictor(sd, lr):
    x = lr
    for i, s in enumerate((1, 1, 1, 2, 1, 1)):
        x = lrelu(conv(sd, f"ConvNet.{2 * i}.", x, s))
    return x.mean((2, 3))


def ref_corrector(sd, sr, code):
    x = sr
    for i, s in enumerate((1, 2, 1, 2, 1, 1, 1)):
        x = lrelu(conv(sd, f"ConvNet.{2 * i}.", x, s))
    g = lrelu(lrelu(code @ sd["code_dense.0.weight"].T + sd["code_dense.0.bias"]) @ sd["code_dense.2.weight"].T
              + sd["code_dense.2.bias"])
    z = torch.cat([x, g[:, :, None, None].expand(-1, -1, *x.shape[-2:])], 1)
    z = conv(sd, "global_dense.4.", lrelu(conv(sd, "global_dense.2.", lrelu(conv(sd, "global_dense.0.", z)))))
    return code + z.mean((2, 3))


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.fixture(scope="module")
def release_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ikc")
    states = {"sftmd": fill(sftmd_shapes(4), 0), "predictor": fill(predictor_shapes(), 1, 0.05),
              "corrector": fill(corrector_shapes(), 2, 0.05)}
    paths = {}
    for name, state in states.items():
        paths[name] = folder / f"{name.capitalize()}_latest_G.pth"
        torch.save(state, paths[name], _use_new_zipfile_serialization=False)  # the release's legacy format
    return states, paths


def test_each_file_loads_alone_strictly(release_files):
    states, paths = release_files
    assert len(states["sftmd"]) == 662 and len(states["predictor"]) == 12 and len(states["corrector"]) == 24
    for name, cls in (("sftmd", SFTMD), ("predictor", IKCPredictor), ("corrector", IKCCorrector)):
        model = load_model(str(paths[name]))
        assert type(model) is cls and not model.training
        exported = to_ikc_state_dict(model)
        assert set(exported) == set(states[name])
        assert all(torch.equal(exported[k], states[name][k]) for k in exported)
    assert sum(p.numel() for p in load_model(str(paths["sftmd"])).parameters()) == 7_966_147


def test_modules_match_the_equations(release_files):
    states, paths = release_files
    gen = torch.Generator().manual_seed(3)
    lr = torch.rand(2, 3, 7, 9, generator=gen)
    code = torch.randn(2, 10, generator=gen) * 0.1
    sftmd, pred, corr = (load_model(str(paths[n])) for n in ("sftmd", "predictor", "corrector"))
    with torch.no_grad():
        sr = sftmd(lr, code)
        want = ref_sftmd(states["sftmd"], lr, code, 4)
        assert float(want.std()) > 0.05  # not saturated by the clamp
        assert rel(sr, want) < 1e-5
        assert rel(pred(None, lr), ref_predictor(states["predictor"], lr)) < 1e-5
        assert rel(corr(sr, lr, code), ref_corrector(states["corrector"], sr, code)) < 1e-5


def test_assembled_loop_equals_release_loop(release_files, tmp_path):
    states, paths = release_files
    states = dict(states, sftmd=fill(sftmd_shapes(4, nb=2), 5))  # a 2-block SFTMD keeps the loop fast
    small = tmp_path / "SFTMD_small.pth"
    torch.save(states["sftmd"], small)
    model = ikc_from_release(small, paths["predictor"], paths["corrector"], loop=3)
    assert inspect.signature(IKC).parameters["loop"].default == 7  # the release's test YAMLs
    lr = torch.rand(1, 3, 8, 6, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = model(lr)
        # test_IKC.py: code_0 = P(LR); SR_t = F(LR, code_{t-1}); code_t = C(SR_t, code_{t-1})
        code = ref_predictor(states["predictor"], lr)
        for t in range(3):
            assert rel(out.codes[t], code) < 1e-5, t
            sr = ref_sftmd(states["sftmd"], lr, code, 4, nb=2)
            assert rel(out.srs[t], sr) < 1e-5, t
            code = ref_corrector(states["corrector"], sr, code)
    assert torch.equal(out.sr, out.srs[-1]) and len(out.srs) == 3 and len(out.codes) == 3
    # the ground-truth oracle is an opt-in helper: it picks the best step per image
    hr = out.srs[1].clone()
    chosen, steps = best_step_by_psnr(out, hr)
    assert steps == [1] and torch.equal(chosen, hr)


def test_tiny_ikc_upscale_and_x3_layout(tmp_path):
    from dan_blocks.inference import upscale

    torch.manual_seed(0)
    model = IKC(nf=64, nb=1, scale=3, loop=2, sft_branch=False).eval()
    lr = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        want = model(lr).sr
        got = upscale(model, lr)
    sr = got if isinstance(got, torch.Tensor) else got.sr
    assert sr.shape == (1, 3, 18, 15) and torch.allclose(sr, want, atol=1e-6)
    with torch.no_grad():  # tiled: the predictor and corrector pool, so they run on whole maps (exact)
        tiled = upscale(model, lr, tile_size=4)
    assert torch.allclose(tiled if isinstance(tiled, torch.Tensor) else tiled.sr, want, atol=1e-5)
    # x3 SFTMD layout: one upsampling conv (576, 64, 3, 3)
    keys = set(to_ikc_state_dict(SFTMD(nb=2, scale=3)))
    assert keys == set(sftmd_shapes(3, nb=2))


def test_dan_passes_the_current_code_to_a_corrector():
    """DAN's takes_code mechanism, also from the Dirac prior: the corrector refines the code that made the SR."""
    from dan_blocks.archs import DAN

    torch.manual_seed(1)
    restorer, corrector = SFTMD(nf=64, nb=1, scale=2, sft_branch=False), IKCCorrector()
    model = DAN(restorer, corrector, {"kernel_size": 21, "code_length": 10, "placeholder": True}, loop=2).eval()
    lr = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        out = model(lr)
        code = model.init_code.expand(1, -1)
        for t in range(2):
            sr = restorer(lr, code)
            assert torch.allclose(out.srs[t], sr, atol=1e-6)
            code = corrector(sr, lr, code)
            assert torch.allclose(out.codes[t], code, atol=1e-6)
    with pytest.raises(ValueError, match="takes the current code"):
        model.estimate(out.sr, lr)


def test_training_stages_through_dan_blocks_train(tmp_path, monkeypatch):
    """IKC's stages on a CPU: stage 1 moves only SFTMD; stage 2 (from stage 1's weights) only the Predictor and
    Corrector; the release's option files carry its sizes and schedules."""
    from pathlib import Path

    import yaml

    from dan_blocks.cli.main import main

    root = Path(__file__).resolve().parents[2] / "basicsr_options" / "ikc"
    for name, stage in (("train_IKC_x4_stage1_sftmd.yml", "sftmd"), ("train_IKC_x4_stage2_correct.yml", "correct")):
        opt = yaml.safe_load((root / name).read_text())
        assert opt["model_type"] == "IKCModel" and opt["train"]["ikc"] == {"stage": stage, "steps": 7}
        assert opt["train"]["optim_g"]["betas"] == [0.9, 0.99] and opt["datasets"]["train"]["gt_size"] == 256
    opt = yaml.safe_load((root / "train_IKC_x4_stage1_sftmd.yml").read_text())
    opt["network_g"].update(nb=1, scale=2, loop=2)
    opt.update(scale=2, num_gpu=0)
    opt["degradation"].update(scale=2, sigma=[0.2, 2.0])
    opt["datasets"]["train"].update(dataroot_gt="builtin:skimage-train", gt_size=32, batch_size_per_gpu=2,
                                    num_worker_per_gpu=0)
    opt["train"].update(total_iter=2, scheduler={"type": "MultiStepLR", "milestones": [10], "gamma": 0.5})
    opt["train"]["ikc"]["steps"] = 2
    opt["logger"] = {"print_freq": 1, "save_checkpoint_freq": 2, "use_tb_logger": False}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "one.yml").write_text(yaml.safe_dump(dict(opt, name="one")))
    assert main(["train", "-opt", str(tmp_path / "one.yml"), "--threads", "1"]) == 0
    first = load_model(str(tmp_path / "experiments" / "one" / "models" / "net_g_2.pth"))
    opt["train"]["ikc"]["stage"] = "correct"
    opt["path"]["pretrain_network_g"] = str(tmp_path / "experiments" / "one" / "models" / "net_g_2.pth")
    (tmp_path / "two.yml").write_text(yaml.safe_dump(dict(opt, name="two")))
    assert main(["train", "-opt", str(tmp_path / "two.yml"), "--threads", "1"]) == 0
    second = load_model(str(tmp_path / "experiments" / "two" / "models" / "net_g_2.pth"))
    a, b = first.state_dict(), second.state_dict()
    moved = {k.split(".")[0] for k in a if a[k].dtype.is_floating_point and not torch.equal(a[k], b[k])}
    assert moved == {"estimator", "initial_estimator"}
