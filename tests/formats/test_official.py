"""Release checkpoints: an independent functional reference of the release's forward, strict loading, errors.

The reference below is written from the spec (docs of the release's layers and state-dict layout) with
torch.nn.functional only; it never calls dan_blocks modules. The state dicts are built key by key in the
release's layout with seeded weights.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dan_blocks import DAN, dan_v1, dan_v2, load_official_checkpoint, load_official_weights
from dan_blocks.archs import default_pca
from dan_blocks.formats import CheckpointMismatchError, to_release_state_dict
from dan_blocks.layers import PCAEncoder

# ---------------------------------------------------------------------------------------------------
# release-layout state dicts, from the spec's key list
# ---------------------------------------------------------------------------------------------------


def _conv(shapes: dict[str, tuple[int, ...]], name: str, c_out: int, c_in: int, k: int) -> None:
    shapes[f"{name}.weight"] = (c_out, c_in, k, k)
    shapes[f"{name}.bias"] = (c_out,)


def _upscale(shapes: dict[str, tuple[int, ...]], scale: int) -> None:
    if scale == 1:
        _conv(shapes, "Restorer.upscale", 3, 64, 3)
    elif scale == 4:
        _conv(shapes, "Restorer.upscale.0", 256, 64, 3)
        _conv(shapes, "Restorer.upscale.2", 256, 64, 3)
        _conv(shapes, "Restorer.upscale.4", 3, 64, 3)
    else:
        _conv(shapes, "Restorer.upscale.0", 64 * scale * scale, 64, 3)
        _conv(shapes, "Restorer.upscale.2", 3, 64, 3)


def release_shapes(version: int, scale: int, k: int = 21, c: int = 10) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    if version == 1:
        _conv(shapes, "Restorer.head", 64, 3, 3)
        for i in range(40):
            p = f"Restorer.body.{i}.body"
            _conv(shapes, f"{p}.0", 64 + c, 64 + c, 3)
            _conv(shapes, f"{p}.2", 64, 64 + c, 3)
            _conv(shapes, f"{p}.3.body.0", 4, 64, 1)
            _conv(shapes, f"{p}.3.body.2", 64, 4, 1)
        _conv(shapes, "Restorer.fusion", 64, 64, 3)
        _upscale(shapes, scale)
        _conv(shapes, "Estimator.head_LR", 32, 3, 1)
        _conv(shapes, "Estimator.head_HR", 32, 3, 9)
        for i in range(5):
            p = f"Estimator.body.{i}.body"
            _conv(shapes, f"{p}.0", 64, 64, 3)
            _conv(shapes, f"{p}.2", 32, 64, 3)
            _conv(shapes, f"{p}.3.body.0", 2, 32, 1)
            _conv(shapes, f"{p}.3.body.2", 32, 2, 1)
        _conv(shapes, "Estimator.out", 10, 32, 3)
    else:
        _conv(shapes, "Restorer.head1", 64, 3, 3)
        _conv(shapes, "Restorer.head2", 64, c, 1)
        for g in range(5):
            for b in range(10):
                p = f"Restorer.body.{g}.body.{b}"
                for j in (0, 2):
                    _conv(shapes, f"{p}.body1.{j}", 64, 64, 3)
                    _conv(shapes, f"{p}.body2.{j}", 64, 64, 1)
        _conv(shapes, "Restorer.fusion", 64, 64, 3)
        _upscale(shapes, scale)
        _conv(shapes, "Estimator.head_LR.0", 32, 3, 5)
        _conv(shapes, "Estimator.head_HR.0", 32, 3, 4 * scale + 1)
        for b in range(5):
            for j in (0, 2):
                _conv(shapes, f"Estimator.body.body.{b}.body1.{j}", 32, 32, 3)
                _conv(shapes, f"Estimator.body.body.{b}.body2.{j}", 32, 32, 3)
        _conv(shapes, "Estimator.tail.0", 64, 32, 3)
        _conv(shapes, "Estimator.tail.2", k * k, 64, 1)
    shapes["encoder"] = (1, k * k, c)
    shapes["init_kernel"] = (1, k, k)
    shapes["init_ker_map"] = (1, c)
    return shapes


def release_state_dict(
    version: int, scale: int, k: int = 21, c: int = 10, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Seeded weights (uniform, PyTorch-default bound 1/sqrt(fan_in)); a random orthonormal PCA matrix."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in release_shapes(version, scale, k, c).items():
        if key.endswith(".weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = (torch.rand(shape, generator=gen) * 2 - 1) / math.sqrt(fan_in)
        elif key.endswith(".bias"):
            state[key] = (torch.rand(shape, generator=gen) * 2 - 1) * 0.05
    if "Estimator.tail.2.weight" in state:  # peaky kernels, so that the codes (and later iterations) matter
        state["Estimator.tail.2.weight"] *= 30
    basis, _ = torch.linalg.qr(torch.randn(k * k, c, generator=gen, dtype=torch.float64))
    state["encoder"] = basis.float()[None]
    delta = torch.zeros(1, k, k)
    delta[0, k // 2, k // 2] = 1
    state["init_kernel"] = delta
    # slightly off dirac @ P: proves the stored buffer (not a recomputation) is used
    state["init_ker_map"] = delta.reshape(1, 1, k * k).matmul(state["encoder"])[:, 0] + 0.01
    return state


# ---------------------------------------------------------------------------------------------------
# independent functional reference of the release's forward
# ---------------------------------------------------------------------------------------------------


def _c(x: torch.Tensor, sd: dict[str, torch.Tensor], name: str, stride: int = 1, padding: int | None = None):
    w = sd[f"{name}.weight"]
    return F.conv2d(x, w, sd[f"{name}.bias"], stride, w.shape[-1] // 2 if padding is None else padding)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


def _crb(pair: list[torch.Tensor], sd: dict[str, torch.Tensor], p: str) -> list[torch.Tensor]:
    f, c = pair
    y = _c(_lrelu(_c(torch.cat([f, c], 1), sd, f"{p}.body.0")), sd, f"{p}.body.2")
    gate = torch.sigmoid(
        _c(_lrelu(_c(F.adaptive_avg_pool2d(y, 1), sd, f"{p}.body.3.body.0")), sd, f"{p}.body.3.body.2")
    )
    return [y * gate + f, c]


def _dpcg_in_place(x: list[torch.Tensor], sd: dict[str, torch.Tensor], p: str, nb: int) -> list[torch.Tensor]:
    """The release's group: blocks overwrite the list they get; the 'residual' then reads that same list."""
    for b in range(nb):
        q = f"{p}.body.{b}"
        f1 = _c(_lrelu(_c(x[0], sd, f"{q}.body1.0")), sd, f"{q}.body1.2")
        f2 = _c(_lrelu(_c(x[1], sd, f"{q}.body2.0")), sd, f"{q}.body2.2")
        x[0] = x[0] + f1 * f2
        x[1] = x[1] + f2
    y = x  # the very same list object
    y[0] = x[0] + y[0]
    y[1] = x[1] + y[1]
    return y


def _upsample(f: torch.Tensor, sd: dict[str, torch.Tensor], scale: int) -> torch.Tensor:
    if scale == 1:
        return _c(f, sd, "Restorer.upscale")
    if scale == 4:
        f = F.pixel_shuffle(_c(f, sd, "Restorer.upscale.0"), 2)
        f = F.pixel_shuffle(_c(f, sd, "Restorer.upscale.2"), 2)
        return _c(f, sd, "Restorer.upscale.4")
    return _c(F.pixel_shuffle(_c(f, sd, "Restorer.upscale.0"), scale), sd, "Restorer.upscale.2")


def reference_forward(sd: dict[str, torch.Tensor], lr: torch.Tensor, scale: int, loop: int = 4):
    v2 = "Restorer.head1.weight" in sd
    b, _, h, w = lr.shape
    code = sd["init_ker_map"].repeat(b, 1)
    srs, codes, kernels = [], [], []
    for _ in range(loop):
        if v2:
            x = [_c(lr, sd, "Restorer.head1"), _c(code.view(b, -1, 1, 1), sd, "Restorer.head2")]
            for g in range(5):
                x = _dpcg_in_place(x, sd, f"Restorer.body.{g}", 10)
            sr = _upsample(_c(x[0], sd, "Restorer.fusion"), sd, scale)
            x = [_c(lr, sd, "Estimator.head_LR.0"), _c(sr, sd, "Estimator.head_HR.0", scale, 2 * scale)]
            f = _dpcg_in_place(x, sd, "Estimator.body", 5)[0]
            t = _c(F.adaptive_avg_pool2d(_c(f, sd, "Estimator.tail.0"), 1), sd, "Estimator.tail.2")
            kernel = torch.softmax(t.flatten(1), dim=1)
            code = kernel.view(b, 1, -1).matmul(sd["encoder"])[:, 0]
            k = math.isqrt(kernel.shape[1])
            kernels.append(kernel.view(b, k, k))
        else:
            pair = [_c(lr, sd, "Restorer.head"), code.view(b, -1, 1, 1).expand(-1, -1, h, w)]
            for i in range(40):
                pair = _crb(pair, sd, f"Restorer.body.{i}")
            sr = _upsample(_c(pair[0], sd, "Restorer.fusion"), sd, scale)
            pair = [_c(lr, sd, "Estimator.head_LR"), _c(sr, sd, "Estimator.head_HR", scale, 4)]
            for i in range(5):
                pair = _crb(pair, sd, f"Estimator.body.{i}")
            code = F.adaptive_avg_pool2d(_c(pair[0], sd, "Estimator.out"), 1).flatten(1)
            kernels.append(None)
        srs.append(sr)
        codes.append(code)
    return srs, codes, kernels


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> None:
    span = float(b.max() - b.min()) or 1.0
    diff = float((a - b).abs().max())
    assert diff <= rel * span, f"max diff {diff} > {rel} x range {span}"


# ---------------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------------

CASES = [
    (1, 2, 21, 10),
    (1, 3, 21, 10),
    (1, 4, 21, 10),
    (2, 2, 21, 10),
    (2, 3, 21, 10),
    (2, 4, 21, 10),
    (2, 4, 31, 15),
    (2, 1, 21, 10),
]
PARAMS = {
    (1, 2, 21, 10): 4_181_799,
    (1, 3, 21, 10): 4_366_439,
    (1, 4, 21, 10): 4_329_511,
    (2, 2, 21, 10): 4_540_028,
    (2, 3, 21, 10): 4_733_116,
    (2, 4, 21, 10): 4_707_708,
    (2, 4, 31, 15): 4_741_828,
}


def test_release_layout_builder_matches_spec_counts() -> None:
    # the spec: v1 x4 has 379 entries, v2 x4 463 entries
    assert len(release_shapes(1, 4)) == 379
    assert len(release_shapes(2, 4)) == 463


@pytest.mark.parametrize("case", CASES, ids=[f"v{v}_x{s}_k{k}_c{c}" for v, s, k, c in CASES])
def test_official_forward_matches_reference_every_iteration(case: tuple[int, int, int, int]) -> None:
    version, scale, k, c = case
    sd = release_state_dict(version, scale, k, c, seed=sum(case))
    model = load_official_checkpoint(sd, loop=4)
    assert type(model).__name__ == f"DANv{version}"
    assert (model.scale, model.kernel_size, model.code_length, model.loop) == (scale, k, c, 4)
    if case in PARAMS:
        assert sum(p.numel() for p in model.parameters()) == PARAMS[case]
    # the model's own state dict, written back in the release layout, is the checkpoint key by key
    back = to_release_state_dict(model.state_dict())
    assert list(back) == list(sd) or set(back) == set(sd)
    for key, value in sd.items():
        assert back[key].shape == value.shape, key
        assert torch.equal(back[key], value), key
    lr = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(lr)
        srs, codes, kernels = reference_forward(sd, lr, scale)
    assert len(out.srs) == len(out.codes) == len(out.kernels) == 4
    assert out.sr.shape == (2, 3, 9 * scale, 7 * scale)
    for i in range(4):
        _close(out.srs[i], srs[i])
        _close(out.codes[i], codes[i])
        if kernels[i] is None:  # v1: the release decodes nothing; dan-blocks reconstructs with the setting's mean
            matrix, mean = sd["encoder"][0].double(), model.pca.kernel_mean.double()
            torch.testing.assert_close(model.pca.kernel_mean, default_pca(21, 10, 1).kernel_mean)  # setting 1
            expected = (mean + (out.codes[i].double() - mean @ matrix) @ matrix.T).reshape(2, k, k)
            _close(out.kernels[i], expected.float())
            assert model.pca.has_kernel_mean
        else:
            assert out.kernels[i].shape == (2, k, k)
            _close(out.kernels[i], kernels[i])
    assert out.sr is out.srs[-1]


def test_wrappers_prefix_and_path(tmp_path) -> None:
    sd = release_state_dict(2, 2, seed=5)
    ref = load_official_checkpoint(sd, loop=1)
    wrapped = {"params": {f"module.{k}": v for k, v in sd.items()}}
    path = tmp_path / "danv2_x2_setting1.pth"
    torch.save(wrapped, path)
    model = load_official_checkpoint(path, loop=1)
    lr = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(lr).sr, ref(lr).sr, rtol=0, atol=0)
    # a dan-blocks-layout checkpoint (what `convert` writes) is accepted too
    again = load_official_checkpoint({"params": model.state_dict()}, loop=1)
    with torch.no_grad():
        torch.testing.assert_close(again(lr).sr, ref(lr).sr, rtol=0, atol=0)


def test_missing_and_unexpected_keys_are_listed() -> None:
    sd = release_state_dict(1, 2, seed=3)
    del sd["init_ker_map"], sd["init_kernel"]
    sd["Restorer.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatchError) as err:
        load_official_checkpoint(sd)
    text = str(err.value)
    assert "missing keys (2): init_kernel, init_ker_map" in text
    assert "unexpected keys (1): Restorer.extra.weight" in text


def test_v1_weights_into_v2_model_error_names_versions() -> None:
    sd = release_state_dict(1, 4, seed=2)
    model = dan_v2(4, pca=torch.linalg.qr(torch.randn(441, 10))[0], nb=1, ng=1, est_nb=1)
    with pytest.raises(CheckpointMismatchError, match=r"DAN v1 weights but the model is DAN v2"):
        load_official_weights(model, sd)


def test_kernel_size_mismatch_names_sizes() -> None:
    sd = release_state_dict(2, 2, k=21, seed=4)
    model = dan_v2(2, kernel_size=11, setting=2, pca=torch.linalg.qr(torch.randn(121, 10))[0])
    with pytest.raises(CheckpointMismatchError) as err:
        load_official_weights(model, sd)
    text = str(err.value)
    assert "Estimator.tail.2.weight: checkpoint (441, 64, 1, 1), model (121, 64, 1, 1)" in text
    assert "expected size 121, got 441" in text
    assert "21x21 kernels (441 values)" in text and "11x11 kernels (121 values)" in text


def test_code_length_mismatch_names_sizes() -> None:
    sd = release_state_dict(2, 4, k=31, c=15, seed=6)
    model = dan_v2(4, kernel_size=31, code_length=10, setting=2, pca=torch.linalg.qr(torch.randn(961, 10))[0])
    with pytest.raises(CheckpointMismatchError) as err:
        load_official_weights(model, sd)
    text = str(err.value)
    assert (
        "Restorer.head2.weight: checkpoint (64, 15, 1, 1), model (64, 10, 1, 1) (expected size 10, got 15)"
        in text
    )
    assert "15-d codes" in text


def test_not_a_dan_checkpoint_and_missing_file(tmp_path) -> None:
    with pytest.raises(CheckpointMismatchError, match="not a DAN release checkpoint"):
        load_official_checkpoint({"conv.weight": torch.zeros(1)})
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        load_official_checkpoint(tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="expected a tensor"):
        load_official_checkpoint({"Restorer.head.weight": 3})


def test_loaded_model_finetunes_strictly() -> None:
    sd = release_state_dict(2, 2, seed=8)
    model = load_official_checkpoint(sd, loop=1).train()
    fresh = dan_v2(2, pca=PCAEncoder.from_matrix(sd["encoder"][0]))
    fresh.load_state_dict(model.state_dict(), strict=True)  # what fine-tuning with strict loading does
    lr = torch.rand(1, 3, 5, 5)
    model(lr).sr.mean().backward()
    assert model.restorer.head1.weight.grad is not None
    assert isinstance(model, DAN)
    assert dan_v1  # the v1 preset is importable from the top level


def test_v1_channel_attention_reduction_is_read_off_the_tensors() -> None:
    """Bug: a v1 release-layout file with a non-default channel-attention reduction failed to load (the
    reduction was not inferred and the default 16 was used)."""
    from dan_blocks.archs import DANv1
    from dan_blocks.formats import infer_release_config, load_official_checkpoint, to_release_state_dict

    model = DANv1(scale=2, kernel_size=7, code_length=4, pca=torch.eye(49)[:, :4], nf=16, nb=1, est_nf=16,
                  est_nb=1, reduction=4)
    release = to_release_state_dict(model.state_dict())
    assert infer_release_config(release)["reduction"] == 4  # 16 channels squeezed to 16 // 4
    loaded = load_official_checkpoint(release)
    lr = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(loaded(lr).sr, model.eval()(lr).sr)
