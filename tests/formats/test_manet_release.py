"""MANet's released models: state dicts in MANet's own layout (key names and shapes from manet-reference.md)
load strictly and give the kernels and SR of an independent functional implementation of MANet's forward
(written here from the reference, on the MANet-layout tensors), on sizes that are not multiples of 8."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from dan_blocks import load_model, optimize, upscale
from dan_blocks.archs import DAN, MANetEstimator, MANetRRDB
from dan_blocks.formats import from_manet_state_dict, load_manet_checkpoint, to_manet_state_dict
from dan_blocks.utils import CheckpointMismatchError

E = "kernel_estimation."


# -- MANet's layout, built from the reference's key names and shapes ---------------------------------------
def _conv(sd: dict[str, Tensor], key: str, out: int, inp: int, k: int, gen: torch.Generator) -> None:
    sd[key + ".weight"] = torch.randn(out, inp, k, k, generator=gen) * (0.5 / math.sqrt(inp * k * k))
    sd[key + ".bias"] = torch.randn(out, generator=gen) * 0.05


def _maconv(sd: dict[str, Tensor], p: str, c: int, split: int, gen: torch.Generator) -> None:
    sizes = [round(c / split)] * (split - 1)
    sizes.append(c - sum(sizes))
    for i, ci in enumerate(sizes):
        rest = c - ci
        _conv(sd, f"{p}fc{i}.0", rest // 2, rest, 1, gen)
        _conv(sd, f"{p}fc{i}.2", 2 * ci, rest // 2, 1, gen)
        _conv(sd, f"{p}conv{i}", ci, ci, 3, gen)


def _block(sd: dict[str, Tensor], p: str, c: int, split: int, gen: torch.Generator) -> None:
    _maconv(sd, p + "res.0.", c, split, gen)
    _maconv(sd, p + "res.2.", c, split, gen)


def manet_estimator_layout(nf: int, nb: int, k: int, split: int = 2, seed: int = 0) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, Tensor] = {}
    _conv(sd, E + "m_head", nf, 3, 3, gen)
    for i in range(nb):
        _block(sd, f"{E}m_down1.{i}.", nf, split, gen)
    _conv(sd, f"{E}m_down1.{nb}", 2 * nf, nf, 2, gen)
    for i in range(nb):  # MANet's sequential() stores one module unwrapped
        _block(sd, f"{E}m_body." if nb == 1 else f"{E}m_body.{i}.", 2 * nf, split, gen)
    sd[E + "m_up1.0.weight"] = torch.randn(2 * nf, nf, 2, 2, generator=gen) * (0.5 / math.sqrt(4 * nf))
    sd[E + "m_up1.0.bias"] = torch.randn(nf, generator=gen) * 0.05
    for i in range(nb):
        _block(sd, f"{E}m_up1.{i + 1}.", nf, split, gen)
    _conv(sd, E + "m_tail", k * k, nf, 3, gen)
    return sd


def manet_stage3_layout(
    nf: int, nb: int, gc: int, manet_nf: int, manet_nb: int, k: int, c: int, scale: int, seed: int = 0
) -> dict[str, Tensor]:
    sd = manet_estimator_layout(manet_nf, manet_nb, k, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    sd["pca_matrix"] = torch.randn(1, k * k, c, 1, 1, generator=gen) * 0.2
    _conv(sd, "conv_first", nf, 3, 3, gen)
    for i in range(nb):
        p = f"RRDB_trunk.{i}."
        for branch in ("mul", "add"):
            _conv(sd, f"{p}SFT.{branch}_conv1", 32, nf + c, 3, gen)
            _conv(sd, f"{p}SFT.{branch}_conv2", nf, 32, 3, gen)
        for r in (1, 2, 3):
            for j in range(1, 6):
                _conv(sd, f"{p}RDB{r}.conv{j}", nf if j == 5 else gc, nf + (j - 1) * gc, 3, gen)
    _conv(sd, "trunk_conv", nf, nf, 3, gen)
    _conv(sd, "upsampler.0", 3 * scale * scale, nf, 3, gen)
    return sd


# -- MANet's forward, functionally, from the reference ----------------------------------------------------
def _c(sd: dict[str, Tensor], key: str, x: Tensor, **kw: int) -> Tensor:
    w = sd[key + ".weight"]
    return F.conv2d(x, w, sd[key + ".bias"], padding=kw.get("padding", w.shape[-1] // 2), stride=kw.get("stride", 1))


def ref_maconv(sd: dict[str, Tensor], p: str, x: Tensor, split: int = 2) -> Tensor:
    c = x.shape[1]
    sizes = [round(c / split)] * (split - 1)
    sizes.append(c - sum(sizes))
    groups = torch.split(x, sizes, dim=1)
    outs = []
    for i, ci in enumerate(sizes):
        rest = torch.cat([g for j, g in enumerate(groups) if j != i], dim=1)
        h = _c(sd, f"{p}fc{i}.2", F.relu(_c(sd, f"{p}fc{i}.0", rest)))
        outs.append(_c(sd, f"{p}conv{i}", groups[i] * torch.sigmoid(h[:, :ci]) + h[:, ci:]))
    return torch.cat(outs, dim=1)


def ref_block(sd: dict[str, Tensor], p: str, x: Tensor) -> Tensor:
    return x + ref_maconv(sd, p + "res.2.", F.relu(ref_maconv(sd, p + "res.0.", x)))


def ref_kernels(sd: dict[str, Tensor], lr: Tensor, nb: int) -> Tensor:
    h, w = lr.shape[-2:]
    x = F.pad(lr, (0, math.ceil(w / 8) * 8 - w, 0, math.ceil(h / 8) * 8 - h), mode="replicate")
    x1 = _c(sd, E + "m_head", x)
    y = x1
    for i in range(nb):
        y = ref_block(sd, f"{E}m_down1.{i}.", y)
    x2 = _c(sd, f"{E}m_down1.{nb}", y, stride=2, padding=0)
    y = x2
    for i in range(nb):
        y = ref_block(sd, f"{E}m_body." if nb == 1 else f"{E}m_body.{i}.", y)
    y = F.conv_transpose2d(y + x2, sd[E + "m_up1.0.weight"], sd[E + "m_up1.0.bias"], stride=2)
    for i in range(nb):
        y = ref_block(sd, f"{E}m_up1.{i + 1}.", y)
    return _c(sd, E + "m_tail", y + x1)[..., :h, :w].softmax(dim=1)


def ref_stage3(sd: dict[str, Tensor], lr: Tensor, nb: int, manet_nb: int, scale: int) -> tuple[Tensor, Tensor]:
    kernel = ref_kernels(sd, lr, manet_nb)
    code = (kernel.unsqueeze(2) * sd["pca_matrix"]).sum(1)  # (B, C, h, w), no mean subtraction
    lrelu = torch.nn.functional.leaky_relu
    first = _c(sd, "conv_first", lr)
    feat = first
    for i in range(nb):
        p = f"RRDB_trunk.{i}."
        z = torch.cat((feat, code), dim=1)
        mul = torch.sigmoid(_c(sd, p + "SFT.mul_conv2", lrelu(_c(sd, p + "SFT.mul_conv1", z), 0.2)))
        add = _c(sd, p + "SFT.add_conv2", lrelu(_c(sd, p + "SFT.add_conv1", z), 0.2))
        out = feat * mul + add
        for r in (1, 2, 3):
            xs = [out]
            for j in range(1, 5):
                xs.append(lrelu(_c(sd, f"{p}RDB{r}.conv{j}", torch.cat(xs, 1)), 0.2))
            out = _c(sd, f"{p}RDB{r}.conv5", torch.cat(xs, 1)) * 0.2 + out
        feat = out * 0.2 + feat
    feat = first + _c(sd, "trunk_conv", feat)
    return F.pixel_shuffle(_c(sd, "upsampler.0", feat), scale), kernel


def _rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# -- released sizes -----------------------------------------------------------------------------------------
def test_released_sizes_match_the_reference_counts_and_keys() -> None:
    stage1 = manet_estimator_layout(128, 1, 21)
    assert stage1[E + "m_down1.0.res.0.fc0.0.weight"].shape == (32, 64, 1, 1)
    assert stage1[E + "m_up1.0.weight"].shape == (256, 128, 2, 2)
    assert stage1[E + "m_tail.weight"].shape == (441, 128, 3, 3)
    model = load_model(stage1)
    assert isinstance(model, MANetEstimator) and not model.use_sr and model.pad_multiple == 8
    assert sum(p.numel() for p in model.parameters()) == 1_810_361
    stage3 = manet_stage3_layout(64, 10, 32, 128, 1, 21, 15, 4)
    model3 = load_model(stage3)
    assert isinstance(model3, MANetRRDB) and model3.scale == 4 and model3.loop == 1
    assert sum(p.numel() for p in model3.parameters()) == 9_896_617
    assert to_manet_state_dict(model3.state_dict()).keys() == stage3.keys()


# -- exactness ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("nb", [1, 2])
@pytest.mark.parametrize(("h", "w"), [(13, 21), (16, 24), (9, 7)])
def test_stage1_kernels_equal_manets_forward(nb: int, h: int, w: int, tmp_path) -> None:
    sd = manet_estimator_layout(16, nb, 7, seed=nb)
    path = tmp_path / "stage1_MANet_x4.pth"
    torch.save(sd, path)
    est = load_model(path)
    lr = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h))
    with torch.no_grad():
        kernels, ref = est(None, lr), ref_kernels(sd, lr, nb)
    assert kernels.shape == (2, 49, h, w)
    assert _rel(kernels, ref) <= 1e-5
    torch.testing.assert_close(kernels.sum(1), torch.ones(2, h, w))


def test_manets_padding_is_what_makes_the_border_kernels_exact() -> None:
    sd = manet_estimator_layout(16, 1, 7, seed=3)
    lr = torch.rand(1, 3, 13, 21, generator=torch.Generator().manual_seed(0))
    approx = load_model(sd, pad_multiple=2)  # the dan-blocks default, for comparison
    with torch.no_grad():
        ref, got = ref_kernels(sd, lr, 1), approx(None, lr)
    border = (got - ref).abs().amax(dim=1)
    assert float(border[:, -3:, :].max()) > 1e-4  # bottom rows differ without MANet's padding to 8
    assert float(border[:, :4, :4].max()) < 1e-5  # far from the bottom/right: the same


@pytest.mark.parametrize(("manet_nb", "h", "w"), [(1, 11, 19), (2, 16, 13)])
def test_stage3_sr_and_kernels_equal_manets_forward(manet_nb: int, h: int, w: int) -> None:
    sd = manet_stage3_layout(16, 2, 8, 16, manet_nb, 7, 5, 3, seed=5)
    model = load_model(sd)
    lr = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(lr)
        sr_ref, k_ref = ref_stage3(sd, lr, 2, manet_nb, 3)
    assert out.sr.shape == (1, 3, 3 * h, 3 * w)
    assert len(out.srs) == len(out.kernels) == len(out.codes) == 1
    assert _rel(out.kernels[0], k_ref) <= 1e-5
    assert _rel(out.sr, sr_ref) <= 1e-5
    optimize(model)
    with torch.no_grad():
        assert _rel(model.super_resolve(lr), sr_ref) <= 1e-5
        tiled = upscale(model, lr, tile_size=8, max_halo=None)
        blockwise = upscale(model, lr, tile_size=6)
    assert _rel(tiled.sr, sr_ref) <= 1e-5  # tiles start on multiples of 8: the padding stays MANet's
    assert _rel(blockwise.sr, sr_ref) <= 1e-5 and _rel(blockwise.kernels[0], k_ref) <= 1e-5


def test_layout_round_trip_and_strict_errors(tmp_path) -> None:
    sd = manet_stage3_layout(8, 1, 4, 8, 1, 5, 3, 2)
    assert to_manet_state_dict(from_manet_state_dict(sd)).keys() == sd.keys()
    broken = {k: v for k, v in sd.items() if k != "RRDB_trunk.0.RDB2.conv3.weight"}
    with pytest.raises(CheckpointMismatchError, match=r"RRDB_trunk\.0\.RDB2\.conv3|trunk\.0\.rdb2\.conv3"):
        load_manet_checkpoint(broken)
    with pytest.raises(ValueError, match=r"cannot set.*nf"):
        load_model(sd, nf=16)
    for key, bad in ((E + "m_tail.weight", torch.zeros(25)), ("pca_matrix", torch.zeros(25, 3)),
                     (E + "m_head.weight", torch.zeros(0, 3, 3, 3))):
        with pytest.raises(CheckpointMismatchError, match=f"tensor '{key}' has shape"):  # the malformed one
            load_model(dict(sd, **{key: bad}))
    reshaped = dict(sd, **{"trunk_conv.weight": torch.zeros(8, 8, 1, 1)})
    with pytest.raises(CheckpointMismatchError, match=r"shape differences.*\n.*trunk_conv\.weight"):
        load_model(reshaped)


# -- the alternation started from an estimate ---------------------------------------------------------------
class _Recorder(torch.nn.Module):
    output_kind = "kernel"

    def __init__(self, log: list[str], name: str, size: int) -> None:
        super().__init__()
        self.log, self.name, self.size = log, name, size

    def forward(self, sr: Tensor | None, lr: Tensor) -> Tensor:
        self.log.append(f"{self.name}({'sr' if sr is not None else 'None'})")
        kernel = torch.zeros(lr.shape[0], self.size, self.size)
        kernel[:, self.size // 2, self.size // 2] = 1.0 if sr is None else 0.5
        return kernel


class _Restorer(torch.nn.Module):
    scale = 2

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def forward(self, lr: Tensor, code: Tensor) -> Tensor:
        self.log.append("R")
        return F.interpolate(lr, scale_factor=2) * code[:, :1, None, None]


def test_start_estimate_order_and_initial_estimator() -> None:
    log: list[str] = []
    pca = torch.eye(9)[:, :3]  # code = the first three taps
    dan = DAN(_Restorer(log), _Recorder(log, "C", 3), pca, loop=3, start="estimate",
              initial_estimator=_Recorder(log, "P", 3))
    out = dan(torch.ones(1, 3, 4, 4))
    assert log == ["P(None)", "R", "C(sr)", "R", "C(sr)", "R"]  # IKC: predictor, then restore/correct
    assert len(out.srs) == len(out.kernels) == 3
    assert float(out.kernels[0][0, 1, 1]) == 1.0 and float(out.kernels[1][0, 1, 1]) == 0.5
    log.clear()
    DAN(_Restorer(log), _Recorder(log, "E", 3), pca, loop=2)(torch.ones(1, 3, 4, 4))
    assert log == ["R", "E(sr)", "R", "E(sr)"]  # DAN: restore from the prior first
    with pytest.raises(ValueError, match=r"start must be .*prior.*estimate"):
        DAN(_Restorer(log), _Recorder(log, "E", 3), pca, start="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"needs the SR image \(use_sr=True\)"):
        DAN(_Restorer(log), MANetEstimator(nf=4, kernel_size=3, scale=2), pca, start="estimate")
    with pytest.raises(ValueError, match="initial_estimator is only used with start='estimate'"):
        DAN(_Restorer(log), _Recorder(log, "E", 3), pca, initial_estimator=_Recorder(log, "P", 3))


def test_cli_sr_with_manets_files(tmp_path, capsys) -> None:
    import cv2
    import numpy as np

    from dan_blocks.cli.main import main

    sd = manet_stage3_layout(8, 1, 4, 8, 1, 5, 3, 2, seed=9)
    stage3, stage1 = tmp_path / "stage3_MANet+RRDB_x2.pth", tmp_path / "stage1_MANet_x2.pth"
    torch.save(sd, stage3)
    torch.save({k: v for k, v in sd.items() if k.startswith(E)}, stage1)
    pixels = np.random.default_rng(0).integers(0, 256, (13, 11, 3), dtype=np.uint8)
    assert cv2.imwrite(str(tmp_path / "in.png"), pixels)
    assert main(["sr", "-m", str(stage3), str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    lr = torch.from_numpy(pixels[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        _, k_ref = ref_stage3(sd, lr, 1, 1, 2)
    per_pixel = torch.from_numpy(np.load(tmp_path / "out" / "in_x2_kernel_png.npy"))
    assert per_pixel.shape == (25, 13, 11)  # the whole per-pixel map; the picture shows the image average
    assert _rel(per_pixel, k_ref[0]) <= 1e-5
    assert (tmp_path / "out" / "in_x2.png").is_file() and (tmp_path / "out" / "in_x2_kernel_png.png").is_file()
    capsys.readouterr()
    assert main(["sr", "-m", str(stage1), str(tmp_path / "in.png"), "-o", str(tmp_path / "o1")]) == 2
    assert "holds a MANetEstimator, not a super-resolution model" in capsys.readouterr().err


def test_stage3_exports_to_onnx_with_dynamic_sizes(tmp_path) -> None:
    import warnings

    ort = pytest.importorskip("onnxruntime")
    from dan_blocks.archs import SROnly

    sd = manet_stage3_layout(8, 1, 4, 8, 1, 5, 3, 2, seed=11)
    model = load_model(sd)
    path = tmp_path / "manet.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(SROnly(model), (torch.rand(1, 3, 13, 10),), str(path), input_names=["lr"],
                          output_names=["sr"], dynamic_axes={"lr": {2: "h", 3: "w"}}, dynamo=False)
    session = ort.InferenceSession(str(path))
    for h, w in ((13, 10), (16, 9)):  # the padding to 8 follows the input's size
        lr = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h))
        got = torch.from_numpy(session.run(None, {"lr": lr.numpy()})[0])
        ref, _ = ref_stage3(sd, lr, 1, 1, 2)
        assert _rel(got, ref) <= 1e-5


def test_cli_convert_writes_self_describing_files_of_manets_models(tmp_path, capsys) -> None:
    import yaml

    from dan_blocks.cli.main import main

    sd = manet_stage3_layout(8, 1, 4, 8, 1, 5, 3, 2, seed=13)
    for name, state in (("stage3.pth", sd), ("stage1.pth", {k: v for k, v in sd.items() if k.startswith(E)})):
        torch.save(state, tmp_path / name)
        capsys.readouterr()
        assert main(["convert", str(tmp_path / name), str(tmp_path / "out") + "/"]) == 0
        printed = capsys.readouterr().out
        options = yaml.safe_load(printed.split("BasicSR options:", 1)[1])["network_g"]
        converted = tmp_path / "out" / name.replace(".pth", "_basicsr.pth")
        model = load_model(converted)
        assert type(model).__name__ == options["type"]
        lr = torch.rand(1, 3, 9, 13, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            if name == "stage3.pth":
                assert options["type"] == "MANetRRDB" and options["pad_multiple"] == 8
                assert _rel(model(lr).sr, ref_stage3(sd, lr, 1, 1, 2)[0]) <= 1e-5
            else:
                assert options["type"] == "MANetEstimator" and options["use_sr"] is False
                assert _rel(model(None, lr), ref_kernels(sd, lr, 1)) <= 1e-5
    assert main(["convert", str(tmp_path / "stage1.pth"), str(tmp_path / "x.pth"), "--loop", "2"]) == 1
    assert "cannot set ['loop']" in capsys.readouterr().err and not (tmp_path / "x.pth").exists()
