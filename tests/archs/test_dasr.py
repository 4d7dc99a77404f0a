"""DASR: the release's model_600.pt layout (built here from the key lists of the reference facts, seeded random
weights) loads strictly through load_model, and its SR equals a forward written here from the paper's equations,
on the release's 0-255 scale."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from dan_blocks import load_model
from dan_blocks.archs.dasr_arch import DASR, DegradationContrast
from dan_blocks.formats.dasr_files import DASR_IGNORED, to_dasr_state_dict
from dan_blocks.layers import DAConv

MEAN = torch.tensor([0.4488, 0.4371, 0.4040])


def release_shapes(scale: int) -> dict[str, tuple[int, ...]]:
    """The model_600.pt entries: G.* and E.encoder_q.* (reference: 471 at x4, 469 at x2/x3)."""
    shapes: dict[str, tuple[int, ...]] = {
        "G.sub_mean.weight": (3, 3, 1, 1), "G.sub_mean.bias": (3,),
        "G.add_mean.weight": (3, 3, 1, 1), "G.add_mean.bias": (3,),
        "G.head.0.weight": (64, 3, 3, 3), "G.head.0.bias": (64,),
        "G.compress.0.weight": (64, 256),
    }

    def da(prefix: str) -> None:
        shapes[prefix + "kernel.0.weight"] = (64, 64)
        shapes[prefix + "kernel.2.weight"] = (576, 64)
        shapes[prefix + "conv.weight"] = (64, 64, 1, 1)
        shapes[prefix + "conv.bias"] = (64,)
        shapes[prefix + "ca.conv_du.0.weight"] = (8, 64, 1, 1)
        shapes[prefix + "ca.conv_du.2.weight"] = (64, 8, 1, 1)

    def conv(prefix: str, cout: int, cin: int, k: int = 3) -> None:
        shapes[prefix + "weight"] = (cout, cin, k, k)
        shapes[prefix + "bias"] = (cout,)

    for g in range(5):
        for b in range(5):
            p = f"G.body.{g}.body.{b}."
            da(p + "da_conv1.")
            conv(p + "conv1.", 64, 64)
            da(p + "da_conv2.")
            conv(p + "conv2.", 64, 64)
        conv(f"G.body.{g}.body.5.", 64, 64)
    conv("G.body.5.", 64, 64)
    if scale == 4:
        conv("G.tail.0.0.", 256, 64)
        conv("G.tail.0.2.", 256, 64)
    else:
        conv("G.tail.0.0.", 64 * scale * scale, 64)
    conv("G.tail.1.", 3, 64)
    widths = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256)]
    for i, (cin, cout) in enumerate(widths):
        conv(f"E.encoder_q.E.{3 * i}.", cout, cin)
        bn = f"E.encoder_q.E.{3 * i + 1}."
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[bn + name] = (cout,)
        shapes[bn + "num_batches_tracked"] = ()
    shapes["E.encoder_q.mlp.0.weight"] = (256, 256)
    shapes["E.encoder_q.mlp.0.bias"] = (256,)
    shapes["E.encoder_q.mlp.2.weight"] = (256, 256)
    shapes["E.encoder_q.mlp.2.bias"] = (256,)
    return shapes


def release_state(scale: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in release_shapes(scale).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=gen)
        elif key.endswith(".weight") and key.startswith("E.") and len(shape) == 1:  # BN gamma
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            state[key] = 0.03 * torch.randn(shape, generator=gen)
    eye = torch.eye(3).view(3, 3, 1, 1)
    state["G.sub_mean.weight"], state["G.sub_mean.bias"] = eye.clone(), -255 * MEAN
    state["G.add_mean.weight"], state["G.add_mean.bias"] = eye.clone(), 255 * MEAN
    return state


# ---- the release's forward written from the equations (reference facts), on the 0-255 scale -------------------
def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


def ref_da_conv(sd: dict, p: str, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    b, c, _h, _w = x.shape
    kern = lrelu(r @ sd[p + "kernel.0.weight"].T) @ sd[p + "kernel.2.weight"].T  # (B, 64*9)
    outs = []
    for i in range(b):  # per sample, per channel 3x3 kernels, entries [9c, 9c+9) row-major
        weight = kern[i].view(c, 1, 3, 3)
        outs.append(F.conv2d(x[i:i + 1], weight, padding=1, groups=c))
    o = lrelu(torch.cat(outs))
    o = F.conv2d(o, sd[p + "conv.weight"], sd[p + "conv.bias"])
    a = torch.sigmoid(F.conv2d(lrelu(F.conv2d(r[:, :, None, None], sd[p + "ca.conv_du.0.weight"])),
                               sd[p + "ca.conv_du.2.weight"]))
    return o + x * a


def conv(sd: dict, p: str, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
    w = sd[p + "weight"]
    return F.conv2d(x, w, sd[p + "bias"], stride, w.shape[-1] // 2)


def ref_encoder(sd: dict, x: torch.Tensor) -> torch.Tensor:
    for i, stride in enumerate((1, 1, 2, 1, 2, 1)):
        x = conv(sd, f"E.encoder_q.E.{3 * i}.", x, stride)
        bn = f"E.encoder_q.E.{3 * i + 1}."
        x = (x - sd[bn + "running_mean"][:, None, None]) / torch.sqrt(sd[bn + "running_var"][:, None, None] + 1e-5)
        x = lrelu(x * sd[bn + "weight"][:, None, None] + sd[bn + "bias"][:, None, None])
    return x.mean(dim=(2, 3))


def ref_dasr(sd: dict, lr255: torch.Tensor, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    fea = ref_encoder(sd, lr255)
    r = lrelu(fea @ sd["G.compress.0.weight"].T)
    x = lr255 - 255 * MEAN[None, :, None, None]
    x = conv(sd, "G.head.0.", x)
    res = x
    for g in range(5):
        gin = res
        for b in range(5):
            p = f"G.body.{g}.body.{b}."
            o = lrelu(ref_da_conv(sd, p + "da_conv1.", res, r))
            o = lrelu(conv(sd, p + "conv1.", o))
            o = lrelu(ref_da_conv(sd, p + "da_conv2.", o, r))
            res = conv(sd, p + "conv2.", o) + res
        res = conv(sd, f"G.body.{g}.body.5.", res) + gin
    res = conv(sd, "G.body.5.", res) + x
    if scale == 4:
        t = F.pixel_shuffle(conv(sd, "G.tail.0.2.", F.pixel_shuffle(conv(sd, "G.tail.0.0.", res), 2)), 2)
    else:
        t = F.pixel_shuffle(conv(sd, "G.tail.0.0.", res), scale)
    return conv(sd, "G.tail.1.", t) + 255 * MEAN[None, :, None, None], fea


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_release_layouts_are_read_and_rebuilt(scale):
    """Each released scale: sizes read off the tensors, the model built from them has exactly the file's keys and
    shapes (meta tensors)."""
    from dan_blocks.formats.dasr_files import infer_dasr_config

    shapes = release_shapes(scale)
    assert len(shapes) == (471 if scale == 4 else 469)
    cfg = infer_dasr_config({k: torch.empty(s, device="meta") for k, s in shapes.items()})
    assert cfg["scale"] == scale
    with torch.device("meta"):
        model = DASR(**cfg)
    assert {k: tuple(v.shape) for k, v in to_dasr_state_dict(model).items()} == shapes


@pytest.mark.parametrize("scale", [2, 4])
def test_release_file_loads_strictly_and_sr_matches(tmp_path, scale):
    state = release_state(scale)
    assert len(state) == (471 if scale == 4 else 469)
    path = tmp_path / "model_600.pt"
    torch.save(state, path)
    model = load_model(str(path), input_range=255.0)
    assert isinstance(model, DASR) and model.scale == scale and not model.training
    assert set(to_dasr_state_dict(model)) == set(state)  # strict key set, both ways
    lr = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(1)) * 255
    with torch.no_grad():
        out = model(lr)
        want, fea = ref_dasr(state, lr, scale)
        assert out.sr.shape == (2, 3, 9 * scale, 7 * scale)
        assert rel(out.sr, want) < 1e-5
        assert rel(out.codes[0], fea) < 1e-5  # the representation is the estimate (pooled 256-d, not the MLP)
        assert out.kernels == []
        # the library's [0, 1] convention (load_model's default): inputs and outputs scaled
        model.input_range = 1.0
        assert rel(model(lr / 255).sr * 255, want) < 1e-5


def test_full_training_state_ignores_only_key_encoder_and_queue(tmp_path):
    state = release_state(2)
    state["E.queue"] = torch.randn(256, 8192)
    state["E.queue_ptr"] = torch.zeros(1, dtype=torch.long)
    for key in [k for k in state if k.startswith("E.encoder_q.")]:
        state["E.encoder_k." + key[len("E.encoder_q."):]] = state[key].clone()
    path = tmp_path / "full.pt"
    torch.save(state, path)
    model = load_model(str(path))
    assert isinstance(model, DASR)
    assert DASR_IGNORED == ("E.encoder_k.", "E.queue", "E.queue_ptr")
    del state["G.tail.1.bias"]  # anything else missing is an error naming it
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"tail\.1\.bias"):
        load_model(str(path))


def test_da_conv_formula_small():
    torch.manual_seed(0)
    layer = DAConv(6, 5, 3, 2, 0.1)
    x, r = torch.randn(2, 6, 5, 4), torch.randn(2, 5)
    sd = {k: v for k, v in layer.state_dict().items()}
    # the formula with nf 6 / cond 5: per-sample depthwise kernels from r, gate from r alone
    kern = lrelu(r @ sd["kernel.0.weight"].T) @ sd["kernel.2.weight"].T
    o = torch.cat([F.conv2d(x[i:i + 1], kern[i].view(6, 1, 3, 3), padding=1, groups=6) for i in range(2)])
    o = F.conv2d(lrelu(o), sd["conv.weight"], sd["conv.bias"])
    a = torch.sigmoid(F.conv2d(lrelu(F.conv2d(r[:, :, None, None], sd["ca.conv_du.0.weight"])),
                               sd["ca.conv_du.2.weight"]))
    assert torch.allclose(layer(x, r)[0], o + x * a, atol=1e-6)


def test_tiny_dasr_upscale_and_tiling():
    from dan_blocks.inference import upscale

    torch.manual_seed(0)
    model = DASR(scale=2, nf=8, rep_nf=8, n_groups=2, n_blocks=1, reduction=4, enc_nf=4).eval()
    lr = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        want = model(lr).sr
        got = upscale(model, lr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tiled = upscale(model, lr, tile_size=5)
    sr = got if isinstance(got, torch.Tensor) else got.sr
    tsr = tiled if isinstance(tiled, torch.Tensor) else tiled.sr
    assert sr.shape == (1, 3, 24, 20)
    assert torch.allclose(sr, want, atol=1e-5)
    assert torch.allclose(tsr, want, atol=1e-4)


def test_contrastive_loss_is_moco():
    torch.manual_seed(0)
    model = DASR(scale=2, nf=8, rep_nf=8, n_groups=1, n_blocks=1, reduction=4, enc_nf=4)
    moco = DegradationContrast(model.estimator, queue_size=8, momentum=0.5, temperature=0.07)
    before = moco.queue.clone()
    q_img, k_img = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    k_params = [p.clone() for p in moco.encoder_k.parameters()]
    _fea, logits, labels = moco(q_img, k_img)
    # the key encoder moved half way to the query encoder (m = 0.5) before making the keys
    for pk0, pk, pq in zip(k_params, moco.encoder_k.parameters(), moco.encoder_q.parameters(), strict=True):
        assert torch.allclose(pk, 0.5 * pk0 + 0.5 * pq)
    q = F.normalize(moco.encoder_q.embed(q_img)[1], dim=1)
    k = F.normalize(moco.encoder_k.embed(k_img)[1], dim=1)
    want = torch.cat([(q * k).sum(1, keepdim=True), q @ before], 1) / 0.07
    assert torch.allclose(logits, want, atol=1e-5)
    assert labels.tolist() == [0, 0]
    assert torch.allclose(moco.queue[:, :2], k.T, atol=1e-6) and int(moco.queue_ptr[0]) == 2
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    assert model.estimator.body[0].weight.grad is not None


def test_cpu_recipe_trains_both_stages(tmp_path, monkeypatch):
    """basicsr_options/dasr/train_DASR_cpu_x2.yml through dan-blocks train: stage 1 (contrastive: only the encoder
    changes) then stage 2 (joint) from its weights; the saved network loads with load_model."""
    from pathlib import Path

    from dan_blocks.cli.main import main

    recipe = Path(__file__).resolve().parents[2] / "basicsr_options" / "dasr" / "train_DASR_cpu_x2.yml"
    monkeypatch.chdir(tmp_path)
    assert main(["train", "-opt", str(recipe), "--threads", "1", "--force_yml", "train:total_iter=3",
                 "train:contrastive:stage=contrastive", "name=stage1", "logger:save_checkpoint_freq=3"]) == 0
    stage1 = tmp_path / "experiments" / "stage1" / "models" / "net_g_3.pth"
    assert stage1.exists()
    first = load_model(str(stage1))
    torch.manual_seed(1)
    fresh = DASR(scale=2, nf=16, rep_nf=16, n_groups=2, n_blocks=2, reduction=4, enc_nf=16)
    assert isinstance(first, DASR)
    # stage 1 trains the encoder only: the restorer keeps its initial weights, the encoder moved
    changed = {k for k, v in first.state_dict().items() if v.dtype.is_floating_point
               and not torch.equal(v, fresh.state_dict()[k])}
    assert changed and all(k.startswith("estimator.") for k in changed)
    assert main(["train", "-opt", str(recipe), "--threads", "1", "--force_yml", "train:total_iter=2", "name=stage2",
                 "logger:save_checkpoint_freq=2", f"path:pretrain_network_g={stage1}"]) == 0
    second = load_model(str(tmp_path / "experiments" / "stage2" / "models" / "net_g_2.pth"))
    assert not torch.equal(second.restorer.head[0].weight, first.restorer.head[0].weight)  # joint: G learns
