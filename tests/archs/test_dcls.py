"""DCLS: the CLS solve against a direct least-squares solve, the DDLK kernel against convolving its filters by hand,
the release's five checkpoint layouts (built here from the reference facts' key lists) loading strictly through
load_model, and SR / kernels against a forward written here from the equations (sizes not multiples of 8)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d

from dan_blocks import load_model
from dan_blocks.archs.dcls_arch import DCLS, DDLKEstimator, dcls_kernel_target
from dan_blocks.formats.dcls_files import to_dcls_state_dict
from dan_blocks.layers.cls_deconv import cls_solve
from dan_blocks.layers.ddlk import linear_chain_kernel


def circulant(kernel: np.ndarray, n: int) -> np.ndarray:
    """The (n*n, n*n) matrix of circular CONVOLUTION with ``kernel`` centred on its tap (k//2, k//2)."""
    k = kernel.shape[0]
    c = k // 2
    a = np.zeros((n * n, n * n))
    for i in range(n):
        for j in range(n):
            for u in range(k):
                for v in range(k):
                    a[i * n + j, ((i - (u - c)) % n) * n + (j - (v - c)) % n] += kernel[u, v]
    return a


def test_cls_solve_is_the_least_squares_minimiser():
    rng = np.random.default_rng(0)
    n = 9
    kernel = rng.random((5, 5)) + 0.1
    kernel /= kernel.sum()
    reg = rng.normal(size=(3, 3))
    reg -= reg.mean()
    y = rng.normal(size=(n, n))
    a, p = circulant(kernel, n), circulant(reg, n)
    # minimiser of ||A x - y||^2 + ||P x||^2: (A^T A + P^T P) x = A^T y
    want = np.linalg.solve(a.T @ a + p.T @ p, a.T @ y.ravel()).reshape(n, n)
    got = cls_solve(torch.tensor(y)[None, None], torch.tensor(kernel)[None], torch.tensor(reg)[None, None])
    assert np.allclose(got[0, 0].numpy(), want, atol=1e-9)


def test_cls_solve_identities():
    rng = np.random.default_rng(1)
    n = 11
    kernel = np.zeros((3, 3))
    kernel[1, 1] = 0.8
    kernel[0, 1], kernel[1, 2] = 0.15, 0.05  # asymmetric: a flip (correlation) would be caught
    x = rng.normal(size=(n, n))
    y = (circulant(kernel, n) @ x.ravel()).reshape(n, n)
    zero = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    back = cls_solve(torch.tensor(y)[None, None], torch.tensor(kernel)[None], zero)
    assert np.allclose(back[0, 0].numpy(), x, atol=1e-9)  # deconvolution undoes the convolution (P = 0)
    reg = torch.tensor(rng.normal(size=(1, 1, 3, 3)))
    reg = reg - reg.mean()
    flat = cls_solve(torch.full((1, 1, n, n), 0.7, dtype=torch.float64), torch.tensor(kernel)[None], reg)
    assert torch.allclose(flat, torch.full_like(flat, 0.7))  # DC gain exactly 1 (K sums to 1, P zero mean)


def test_ddlk_kernel_is_the_filters_convolved_by_hand():
    torch.manual_seed(0)
    g, c = 4, 3
    sizes = (3, 3, 2)  # k = 1 + 2 + 2 + 1 = 6 is fine for the helper; DCLS uses odd k
    w1 = torch.randn(g, c, sizes[0], sizes[0], dtype=torch.float64)
    w2 = torch.randn(g, g, sizes[1], sizes[1], dtype=torch.float64)
    w3 = torch.randn(c, g, sizes[2], sizes[2], dtype=torch.float64)
    got = linear_chain_kernel([w1, w2, w3], 1, c)[0, 0].numpy()
    # correlation by a then b = correlation by the full convolution a * b; summed over the input channels
    total = np.zeros((6, 6))
    for o in range(c):
        for i in range(c):
            for a in range(g):
                for b in range(g):
                    total += convolve2d(convolve2d(w1[a, i].numpy(), w2[b, a].numpy()), w3[o, b].numpy())
    want = (total / c) / (total / c).sum()
    assert np.allclose(got, want, atol=1e-10)
    assert (torch.tensor(want) < 0).any()  # negative taps are kept (no softmax)


# ---- the release layouts -------------------------------------------------------------------------------------
def conv(shapes, prefix, cout, cin, k):
    shapes[prefix + "weight"] = (cout, cin, k, k)
    shapes[prefix + "bias"] = (cout,)


def release_shapes(scale, k, filters, nf=64, nb=10, ng=5, latent=256, reduction=4):
    s: dict = {}
    nf2 = nf // reduction  # the blocks' channel attention reduces by 4 whatever the restorer's reduction
    r = "Restorer."
    conv(s, r + "conv_first.", nf, 3, 3)
    for i in range(3):
        conv(s, f"{r}feature_block.{i}.conv1.", nf, nf, 3)
        conv(s, f"{r}feature_block.{i}.conv2.", nf, nf, 3)
    conv(s, r + "head1.", nf2, nf, 3)
    conv(s, r + "head2.reduce_feature.", nf2, nf, 1)
    for i, kk in ((0, 3), (2, 3), (4, 3), (6, 1)):
        conv(s, f"{r}head2.grad_filter.{i}.", nf2, nf2, kk)
    conv(s, r + "head2.expand_feature.", nf, nf2, 1)
    for g in range(ng):
        for b in range(nb):
            p = f"{r}body.{g}.body.{b}."
            conv(s, p + "body1.0.", nf, nf, 3)
            conv(s, p + "body1.2.", nf, nf, 3)
            conv(s, p + "body2.0.", nf2, nf2, 3)
            conv(s, p + "body2.2.", nf2, nf2, 3)
            conv(s, p + "CA_body1.1.", nf, nf + nf2, 3)
            conv(s, p + "CA_body1.2.conv_du.0.", nf // 4, nf, 1)
            conv(s, p + "CA_body1.2.conv_du.2.", nf, nf // 4, 1)
            conv(s, p + "CA_body2.conv_du.0.", nf2 // 4, nf2, 1)
            conv(s, p + "CA_body2.conv_du.2.", nf2, nf2 // 4, 1)
    conv(s, r + "fusion.", nf, nf + nf2, 3)
    if scale == 4:
        conv(s, r + "upscale.0.", 4 * nf, nf, 3)
        conv(s, r + "upscale.2.", 4 * nf, nf, 3)
        conv(s, r + "upscale.4.", 3, nf, 3)
    else:
        conv(s, r + "upscale.0.", nf * scale * scale, nf, 3)
        conv(s, r + "upscale.2.", 3, nf, 3)
    e = "Estimator."
    conv(s, e + "head.0.", nf, 3, 7)
    for i in range(3):
        conv(s, f"{e}body.0.{i}.conv1.", nf, nf, 3)
        conv(s, f"{e}body.0.{i}.conv2.", nf, nf, 3)
    conv(s, e + "tail.0.", nf, nf, 3)
    conv(s, e + "tail.2.", nf, nf, 3)
    conv(s, e + "tail.4.", latent, nf, 1)
    for i, f in enumerate(filters):
        cin = 3 if i in (0, len(filters) - 1) else 16
        s[f"{e}dec.{i}.weight"] = (16 * cin * f * f, latent)
        s[f"{e}dec.{i}.bias"] = (16 * cin * f * f,)
    return s


RELEASES = [  # setting, scale, k, filter structures, entries (reference table)
    (1, 2, 21, (11, 7, 5, 1), 962), (1, 3, 21, (11, 7, 5, 1), 962), (1, 4, 21, (11, 7, 5, 1), 964),
    (2, 2, 11, (7, 3, 3, 1), 962), (2, 4, 31, (11, 9, 7, 5, 3), 966),
]


@pytest.mark.parametrize("setting,scale,k,filters,entries", RELEASES)
def test_release_layouts_are_read_and_rebuilt(setting, scale, k, filters, entries):
    """Every released configuration: its sizes read off the tensors, and the model built from them has exactly
    the file's keys and shapes (meta tensors: no memory, no time)."""
    from dan_blocks.formats.dcls_files import infer_dcls_config

    shapes = release_shapes(scale, k, filters)
    assert len(shapes) == entries
    state = {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}
    cfg = infer_dcls_config(state)
    assert (cfg["scale"], cfg["kernel_size"], cfg["filter_structures"]) == (scale, k, list(filters))
    with torch.device("meta"):
        model = DCLS(**cfg)
    exported = to_dcls_state_dict(model)
    assert {key: tuple(v.shape) for key, v in exported.items()} == shapes


def test_release_file_loads_strictly(tmp_path):
    shapes = release_shapes(4, 31, (11, 9, 7, 5, 3))
    state = {key: torch.zeros(shape) for key, shape in shapes.items()}
    path = tmp_path / "DCLSx4_setting2.pth"
    torch.save(state, path)
    model = load_model(str(path))
    assert isinstance(model, DCLS) and model.scale == 4 and model.kernel_size == 31 and not model.training
    assert set(to_dcls_state_dict(model)) == set(shapes)
    del state["Estimator.dec.4.bias"]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"dec\.4\.bias"):
        load_model(str(path))


# ---- a forward written from the equations (small widths, same code paths as the release sizes) --------------
def lrelu(x):
    return F.leaky_relu(x, 0.1)


def c2d(sd, p, x, pad=None):
    w = sd[p + "weight"]
    return F.conv2d(x, w, sd[p + "bias"], 1, w.shape[-1] // 2 if pad is None else pad)


def ca(sd, p, x):
    y = x.mean((2, 3), keepdim=True)
    return x * torch.sigmoid(c2d(sd, p + "conv_du.2.", F.relu(c2d(sd, p + "conv_du.0.", y))))


def ref_estimator(sd, lr, filters, k):
    b = lr.shape[0]
    e = "Estimator."
    f1 = c2d(sd, e + "head.0.", lr)
    f = f1
    for i in range(3):
        f = f + c2d(sd, f"{e}body.0.{i}.conv2.", lrelu(c2d(sd, f"{e}body.0.{i}.conv1.", f)))
    f = f + f1
    z = c2d(sd, e + "tail.2.", lrelu(c2d(sd, e + "tail.0.", f, 0)), 0).mean((2, 3), keepdim=True)
    z = c2d(sd, e + "tail.4.", z).flatten(1)
    kernels = []
    for i in range(b):  # one sample at a time: a plain (ungrouped) impulse response
        x = torch.ones(1, 3, 1, 1, dtype=lr.dtype)
        for j, fs in enumerate(filters):
            cin = 3 if j == 0 else 16
            cout = 3 if j == len(filters) - 1 else 16
            w = (z[i] @ sd[f"{e}dec.{j}.weight"].T + sd[f"{e}dec.{j}.bias"]).reshape(cout, cin, fs, fs)
            x = F.conv2d(x, w, padding=k - 1 if j == 0 else 0)
        kern = x[0].flip([1, 2]).mean(0)
        kernels.append(kern / kern.sum())
    return torch.stack(kernels)


def ref_psf2otf(ker, shape):
    """The release's circular shift by slicing (centre = k//2 + 1), then the FFT."""
    psf = torch.zeros(shape, dtype=ker.dtype)
    c = ker.shape[-1] // 2 + 1
    psf[..., :c, :c] = ker[..., c - 1:, c - 1:]
    psf[..., :c, -(c - 1):] = ker[..., c - 1:, :c - 1]
    psf[..., -(c - 1):, :c] = ker[..., :c - 1, c - 1:]
    psf[..., -(c - 1):, -(c - 1):] = ker[..., :c - 1, :c - 1]
    return torch.fft.fft2(psf)


def ref_restorer(sd, lr, kernel, scale, nb, ng):
    r = "Restorer."
    f = c2d(sd, r + "conv_first.", lr)
    g = f
    for i in range(3):
        g = g + c2d(sd, f"{r}feature_block.{i}.conv2.", lrelu(c2d(sd, f"{r}feature_block.{i}.conv1.", g)))
    b = c2d(sd, r + "head1.", g)
    cfe = c2d(sd, r + "head2.reduce_feature.", g)
    p = lrelu(c2d(sd, r + "head2.grad_filter.0.", cfe, 0))
    p = lrelu(c2d(sd, r + "head2.grad_filter.2.", p, 0))
    p = F.adaptive_avg_pool2d(c2d(sd, r + "head2.grad_filter.4.", p, 0), (3, 3))
    p = torch.exp(c2d(sd, r + "head2.grad_filter.6.", p))
    p = p - p.mean((2, 3), keepdim=True)
    k = kernel.shape[-1]
    clear = torch.zeros_like(cfe)
    for ch in range(cfe.shape[1]):  # channel by channel, as released
        y = F.pad(cfe[:, ch:ch + 1], (k, k, k, k), mode="replicate")
        kh = ref_psf2otf(kernel[:, None], y.shape)
        ph = ref_psf2otf(p[:, ch:ch + 1], y.shape)
        x = torch.fft.ifft2(kh.conj() * torch.fft.fft2(y) / (kh.abs() ** 2 + ph.abs() ** 2)).real
        clear[:, ch:ch + 1] = x[..., k:-k, k:-k]
    a = c2d(sd, r + "head2.expand_feature.", clear)
    for gi in range(ng):
        xa, xb = a, b
        for bi in range(nb):
            q = f"{r}body.{gi}.body.{bi}."
            f1 = c2d(sd, q + "body1.2.", lrelu(c2d(sd, q + "body1.0.", xa)))
            f2 = c2d(sd, q + "body2.2.", lrelu(c2d(sd, q + "body2.0.", xb)))
            xa = xa + ca(sd, q + "CA_body1.2.", c2d(sd, q + "CA_body1.1.", lrelu(torch.cat([f1, f2], 1))))
            xb = xb + ca(sd, q + "CA_body2.", f2)
        a, b = 2 * xa, 2 * xb  # the release's group "residual": the block output added to itself
    h = c2d(sd, r + "fusion.", torch.cat([b, a], 1)) + f
    if scale == 4:
        h = F.pixel_shuffle(c2d(sd, r + "upscale.0.", h), 2)
        h = c2d(sd, r + "upscale.4.", F.pixel_shuffle(c2d(sd, r + "upscale.2.", h), 2))
    else:
        h = c2d(sd, r + "upscale.2.", F.pixel_shuffle(c2d(sd, r + "upscale.0.", h), scale))
    return h.clamp(0, 1)


@pytest.mark.parametrize("scale,k,filters,reduction", [(4, 31, (11, 9, 7, 5, 3), 4), (2, 11, (7, 3, 3, 1), 2),
                                                       (3, 21, (11, 7, 5, 1), 4)])
def test_small_release_layout_matches_the_equations(tmp_path, scale, k, filters, reduction):
    nf, nb, ng = 16, 2, 2
    shapes = release_shapes(scale, k, filters, nf=nf, nb=nb, ng=ng, latent=32, reduction=reduction)
    gen = torch.Generator().manual_seed(scale)
    state = {key: 0.05 * torch.randn(shape, generator=gen) for key, shape in shapes.items()}
    state["Restorer.upscale.4.bias" if scale == 4 else "Restorer.upscale.2.bias"] = torch.full((3,), 0.5)
    # a kernel chain near a delta keeps the kernel's sum away from zero (the release divides by it)
    last = f"Estimator.dec.{len(filters) - 1}.bias"
    state[last] = state[last] + 0.5
    path = tmp_path / "dcls.pth"
    torch.save(state, path)
    model = load_model(str(path))
    lr = torch.rand(2, 3, 13, 11, generator=gen)
    with torch.no_grad():
        out = model(lr)
        kernel = ref_estimator(state, lr, filters, k)
        sr = ref_restorer(state, lr, kernel, scale, nb, ng)
    assert torch.allclose(out.kernels[0], kernel, rtol=1e-4, atol=1e-6 * float(kernel.abs().max()))
    assert float((out.sr - sr).abs().max()) < 1e-4 * float(sr.abs().max())
    assert float(sr.std()) > 0.01  # not saturated by the clamp
    assert out.sr.shape == (2, 3, 13 * scale, 11 * scale)


def test_tiny_dcls_upscale_tiles_exactly():
    from dan_blocks.inference import upscale

    torch.manual_seed(0)
    model = DCLS(nf=16, nb=1, ng=1, scale=2, kernel_size=11, latent=16).eval()
    lr = torch.rand(1, 3, 15, 13)
    with torch.no_grad():
        want = model(lr)
        whole = upscale(model, lr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tiled = upscale(model, lr, tile_size=6)
    for got in (whole, tiled):
        sr = got if isinstance(got, torch.Tensor) else got.sr
        assert torch.allclose(sr, want.sr, atol=1e-5)


def test_kernel_target_recovers_a_circular_blur():
    """lr_blur = lr circularly convolved with a kernel: the target is that kernel, thresholded as released."""
    torch.manual_seed(0)
    k = 11
    coords = torch.arange(k) - k // 2
    g = torch.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * 1.2 ** 2)).double()
    g = g / g.sum()
    lr = torch.rand(1, 3, 24, 24, dtype=torch.float64)
    blur = torch.fft.ifft2(torch.fft.fft2(lr) * torch.fft.fft2(torch.roll(F.pad(g, (0, 13, 0, 13)), (-5, -5),
                                                                       (0, 1)))).real
    target = dcls_kernel_target(blur, lr, k)
    flat = g.flatten().sort(descending=True).values
    want = (g - 0.75 * flat[40]).clamp(0, 1)
    want[k // 2 + 1, k // 2 + 1] += 1e-20
    want = want / want.sum()
    assert torch.allclose(target[0], want, atol=1e-8)
    assert abs(float(target.sum()) - 1) < 1e-9


def test_ddlk_estimator_refuses_an_unknown_kernel_size():
    with pytest.raises(ValueError, match="filter_structures"):
        DDLKEstimator(kernel_size=15)
    assert DDLKEstimator(kernel_size=15, filter_structures=[9, 5, 3], nf=8, latent=8).kernel_size == 15


def test_training_with_the_kernel_target(tmp_path, monkeypatch):
    """A reduced setting-1 recipe trains through dan-blocks train (DCLSModel: L1 on SR and on the kernel against
    DCLS's target); the release's option files carry its sizes and schedule."""
    from pathlib import Path

    import yaml

    from dan_blocks.cli.main import main

    root = Path(__file__).resolve().parents[2] / "basicsr_options" / "dcls"
    for setting, scale, k, filters, _ in RELEASES:
        opt = yaml.safe_load((root / f"train_DCLS_setting{setting}_x{scale}.yml").read_text())
        assert opt["model_type"] == "DCLSModel" and opt["network_g"]["kernel_size"] == k
        assert opt["network_g"]["filter_structures"] == list(filters)
        assert (opt["train"]["optim_g"]["lr"], opt["train"]["lr_E"]) == (4e-4, 4e-4)
        assert opt["train"]["scheduler"]["milestones"] == [200000, 400000] and opt["train"]["total_iter"] == 500000
        assert opt["datasets"]["train"]["gt_size"] == 64 * scale
    opt = yaml.safe_load((root / "train_DCLS_setting2_x2.yml").read_text())
    opt["network_g"].update(nf=16, nb=1, ng=1, latent=16)
    opt.update(name="tiny", num_gpu=0)
    opt["datasets"]["train"].update(dataroot_gt="builtin:skimage-train", gt_size=32, batch_size_per_gpu=2,
                                    num_worker_per_gpu=0)
    opt["train"].update(total_iter=2)
    opt["logger"] = {"print_freq": 1, "save_checkpoint_freq": 2, "use_tb_logger": False}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "o.yml").write_text(yaml.safe_dump(opt))
    assert main(["train", "-opt", str(tmp_path / "o.yml"), "--threads", "1"]) == 0
    log = next((tmp_path / "experiments" / "tiny").glob("train_*.log")).read_text()
    assert "l_ker" in log and "l_pix" in log
    assert isinstance(load_model(str(tmp_path / "experiments" / "tiny" / "models" / "net_g_2.pth")), DCLS)
