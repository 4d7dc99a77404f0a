"""DANModel: on-the-fly degradation, losses, estimator learning rate, EMA, validation, atomic checkpoints."""

from __future__ import annotations

import copy
import json
import os
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dan_blocks  # noqa: F401  (registers everything)
from dan_blocks.basicsr import DANModel
from dan_blocks.metrics import align_kernel, kernel_error, kernel_picture

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_opt(tmp: str, version: str = "DANv2", **train: Any) -> dict[str, Any]:
    net: dict[str, Any] = {"type": version, "scale": 2, "nf": 8, "nb": 1, "loop": 3}
    if version == "DANv2":
        net.update(ng=1, est_nf=8, est_nb=1, est_tail_nf=8, residual="add")
    else:
        net.update(est_nf=8, est_nb=1, reduction=4)
    train_opt: dict[str, Any] = {
        "ema_decay": 0,
        "optim_g": {"type": "Adam", "lr": 1e-3, "betas": [0.9, 0.99]},
        "lr_E": 3e-3,
        "scheduler": {"type": "MultiStepLR", "milestones": [100], "gamma": 0.5},
        "total_iter": 100,
        "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0},
        "kernel_opt": {"type": "L1Loss", "loss_weight": 0.5},
    }
    train_opt.update(train)
    return {
        "name": "t", "model_type": "DANModel", "scale": 2, "num_gpu": 0, "is_train": True, "dist": False,
        "rank": 0, "world_size": 1, "manual_seed": 3,
        "degradation": {"preset": "setting1", "scale": 2},
        "network_g": net,
        "path": {"models": tmp, "training_states": tmp, "log": tmp, "visualization": tmp,
                 "pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": train_opt,
        "val": {"save_img": True, "kernel_zoom": 2,
                "metrics": {"psnr": {"type": "calculate_psnr", "crop_border": 2, "test_y_channel": True}}},
    }


def _gt(batch: int = 2, size: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _reference_lr(gt: torch.Tensor, kernels: torch.Tensor, scale: int) -> torch.Tensor:
    """Independent LR synthesis: per-sample reflect-padded correlation + BasicSR's MATLAB imresize + uint8 rounding."""
    from basicsr.utils.matlab_functions import imresize as basicsr_imresize

    pad = kernels.shape[-1] // 2
    out = []
    for img, k in zip(gt, kernels, strict=True):
        padded = F.pad(img[None], (pad, pad, pad, pad), mode="reflect")
        blurred = F.conv2d(padded, k[None, None].expand(3, 1, -1, -1), groups=3)[0]
        small = basicsr_imresize(blurred, 1 / scale)
        out.append(torch.round(small.clamp(0, 1) * 255) / 255)
    return torch.stack(out)


def test_training_batch_is_degraded_on_the_fly_reproducibly(tmp_path) -> None:
    model = DANModel(make_opt(str(tmp_path)))
    gt = _gt()
    model.update_learning_rate(5)
    model.feed_data({"gt": gt})
    lq, kernels = model.lq.clone(), model.gt_kernel.clone()
    assert lq.shape == (2, 3, 12, 12) and kernels.shape == (2, 21, 21)
    torch.testing.assert_close(lq, _reference_lr(gt, kernels, 2), atol=2 / 255, rtol=0)
    assert (lq - _reference_lr(gt, kernels, 2)).abs().gt(1.5 / 255).float().mean() < 0.01
    torch.testing.assert_close(kernels.sum(dim=(1, 2)), torch.ones(2))
    model.feed_data({"gt": gt})  # same iteration: same kernels
    torch.testing.assert_close(model.gt_kernel, kernels, rtol=0, atol=0)
    model.update_learning_rate(6)
    model.feed_data({"gt": gt})
    assert not torch.equal(model.gt_kernel, kernels)


@pytest.mark.parametrize("version", ["DANv2", "DANv1"])
def test_loss_is_pixel_l1_plus_weighted_kernel_l1_of_last_iteration(tmp_path, version: str) -> None:
    model = DANModel(make_opt(str(tmp_path), version))
    model.update_learning_rate(1)
    model.feed_data({"gt": _gt()})
    net = copy.deepcopy(model.net_g)
    model.optimize_parameters(1)
    with torch.no_grad():
        out = net(model.lq)
    l_pix = (out.srs[-1] - model.gt).abs().mean()
    if version == "DANv2":
        l_ker = (out.kernels[-1] - model.gt_kernel).abs().mean()
    else:  # v1: codes vs the PCA code of the true kernel, flat @ P
        target = model.gt_kernel.reshape(2, -1) @ net.pca.matrix
        l_ker = (out.codes[-1] - target).abs().mean()
    assert model.log_dict["l_pix"] == pytest.approx(float(l_pix), rel=1e-5)
    assert model.log_dict["l_ker"] == pytest.approx(0.5 * float(l_ker), rel=1e-5)


def test_iteration_weights_supervise_every_iteration(tmp_path) -> None:
    model = DANModel(make_opt(str(tmp_path), iteration_weights=[0.25, 0.5, 1.0]))
    model.update_learning_rate(1)
    model.feed_data({"gt": _gt()})
    net = copy.deepcopy(model.net_g)
    model.optimize_parameters(1)
    with torch.no_grad():
        out = net(model.lq)
    for i in range(3):
        assert model.log_dict[f"l_pix_{i + 1}"] == pytest.approx(float((out.srs[i] - model.gt).abs().mean()), rel=1e-5)
    with pytest.raises(ValueError, match="one weight per DAN iteration"):
        DANModel(make_opt(str(tmp_path), iteration_weights=[1.0]))


def test_estimator_has_its_own_learning_rate_group(tmp_path) -> None:
    model = DANModel(make_opt(str(tmp_path)))
    groups = model.optimizer_g.param_groups
    assert [g["lr"] for g in groups] == [1e-3, 3e-3]
    estimator = {id(p) for p in model.net_g.estimator.parameters()}
    assert {id(p) for p in groups[1]["params"]} == estimator
    assert not estimator & {id(p) for p in groups[0]["params"]}
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(model.net_g.parameters()))
    # the scheduler halves both groups at the milestone (BasicSR MultiStepRestartLR)
    opt = make_opt(str(tmp_path))
    opt["train"]["scheduler"]["milestones"] = [2]
    model = DANModel(opt)
    for it in (1, 2, 3):  # BasicSR steps the scheduler from iteration 2: last_epoch reaches 2 at iteration 3
        model.update_learning_rate(it)
    assert model.get_current_learning_rate() == pytest.approx([5e-4, 1.5e-3])


def test_ema_follows_the_exponential_moving_average_formula(tmp_path) -> None:
    model = DANModel(make_opt(str(tmp_path), ema_decay=0.75))
    before = {k: v.clone() for k, v in model.net_g_ema.named_parameters()}
    model.update_learning_rate(1)
    model.feed_data({"gt": _gt()})
    model.optimize_parameters(1)
    for name, param in model.net_g.named_parameters():
        expected = 0.75 * before[name] + 0.25 * param.detach()
        torch.testing.assert_close(dict(model.net_g_ema.named_parameters())[name], expected)


class _Dataset:
    opt: ClassVar[dict[str, str]] = {"name": "tiny"}


class _Loader(list):
    dataset = _Dataset  # mimics DataLoader.dataset.opt


def _y(img_bgr: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 BGR image, written out (16 + (65.481 R + 128.553 G + 24.966 B) / 255)."""
    img = img_bgr.astype(np.float64)
    return 16.0 + (65.481 * img[..., 2] + 128.553 * img[..., 1] + 24.966 * img[..., 0]) / 255.0


def test_validation_reports_psnr_per_iteration_kernel_error_and_pictures(tmp_path) -> None:
    from basicsr.utils import tensor2img

    model = DANModel(make_opt(str(tmp_path)))
    gt = _gt(1, 24, seed=1)
    true_kernel = torch.zeros(1, 21, 21)
    true_kernel[0, 10, 9:12] = 1 / 3
    lq = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    loader = _Loader([{"lq": lq, "gt": gt, "kernel": true_kernel, "lq_path": ["img_a.png"]}])
    model.nondist_validation(loader, 7, None, save_img=True)
    res = model.iteration_results
    assert len(res["psnr_y_per_iteration"]) == 3 and len(res["kernel_error_per_iteration"]) == 3
    # independent recomputation of the final iteration's Y-PSNR (crop = scale = 2) and kernel errors
    with torch.no_grad():
        out = model.net_g(lq)
    sr_y, gt_y = _y(tensor2img([out.sr]))[2:-2, 2:-2], _y(tensor2img([gt]))[2:-2, 2:-2]
    psnr = 10 * np.log10(255.0**2 / np.mean((sr_y - gt_y) ** 2))
    assert res["psnr_y_per_iteration"][-1] == pytest.approx(psnr, abs=1e-6)
    assert model.metric_results["psnr"] == pytest.approx(psnr, abs=1e-6)
    for i, kernel in enumerate(out.kernels):
        diff = kernel[0].double().numpy() - true_kernel[0].double().numpy()
        assert res["kernel_error_per_iteration"][i] == pytest.approx(np.abs(diff).sum(), rel=1e-5)
        # MANet's kernel PSNR: 20 log10(1 / RMSE) over the taps
        assert res["kernel_psnr_per_iteration"][i] == pytest.approx(20 * np.log10(1 / np.sqrt((diff**2).mean())),
                                                                    rel=1e-5)
        # aligned: never worse than tap by tap (no shift is one of the candidates), reported for every iteration
        assert res["kernel_error_aligned_per_iteration"][i] <= res["kernel_error_per_iteration"][i] + 1e-6
    assert len(res["kernel_psnr_aligned_per_iteration"]) == 3
    summary = json.loads((tmp_path / "metrics_tiny_7.json").read_text())
    assert summary["psnr"] == pytest.approx(psnr, abs=1e-6) and summary["images"] == 1
    assert cv2.imread(str(tmp_path / "img_a" / "img_a_7.png")).shape == (24, 24, 3)
    picture = cv2.imread(str(tmp_path / "img_a" / "img_a_7_kernel.png"), cv2.IMREAD_GRAYSCALE)
    assert picture.shape == (42, 2 * 42 + 4)
    assert (picture[:, 42:46] == 255).all()  # the white bar between estimate and truth
    right = picture[:, 46:]
    assert (right[20:22, 18:24] == 255).all() and right[:20].max() == 0  # the 1x3 line kernel, zoom 2


def test_kernel_helpers_against_direct_computation() -> None:
    big = torch.arange(31 * 31, dtype=torch.float32).reshape(1, 31, 31)
    assert torch.equal(align_kernel(big, 21), big[:, 5:26, 5:26])
    small = torch.ones(1, 11, 11)
    padded = align_kernel(small, 21)
    assert padded.sum() == 121 and torch.equal(padded[:, 5:16, 5:16], small)
    a, b = torch.rand(2, 21, 21), torch.rand(2, 21, 21)
    torch.testing.assert_close(kernel_error(a, b), torch.tensor([(a[i] - b[i]).abs().sum() for i in range(2)]))
    per_pixel = a.reshape(2, 441, 1, 1).expand(2, 441, 3, 4)
    torch.testing.assert_close(kernel_error(per_pixel, b), kernel_error(a, b))
    dirac = torch.zeros(3, 3)
    dirac[1, 1] = 0.5
    pic = kernel_picture(dirac, zoom=2)
    assert pic.shape == (6, 6) and pic[2:4, 2:4].tolist() == [[255, 255], [255, 255]] and pic.sum() == 4 * 255
    with pytest.raises(ValueError, match="odd"):
        align_kernel(torch.ones(1, 4, 4), 21)


def test_misspelled_option_key_is_named_with_the_accepted_keys(tmp_path) -> None:
    opt = make_opt(str(tmp_path))
    opt["train"]["lr_e"] = opt["train"].pop("lr_E")
    with pytest.raises(ValueError, match=r"'lr_e' \(did you mean 'lr_E'\?\).*accepted keys: .*optim_g"):
        DANModel(opt)
    opt = make_opt(str(tmp_path))
    opt["degradation"]["sigmaa"] = [0.2, 2.0]
    with pytest.raises((ValueError, KeyError), match="sigmaa"):
        DANModel(opt)
    opt = make_opt(str(tmp_path))
    del opt["degradation"]
    with pytest.raises(ValueError, match="degradation"):
        DANModel(opt)


def test_too_small_inputs_give_clear_errors(tmp_path) -> None:
    model = DANModel(make_opt(str(tmp_path)))
    with pytest.raises(ValueError, match=r"2x2 is smaller than DANModel needs: at least 3x3"):
        model.feed_data({"lq": torch.rand(1, 3, 2, 2), "gt": torch.rand(1, 3, 4, 4)})
    model.update_learning_rate(1)
    with pytest.raises(ValueError, match=r"training HR patch 8x8 .* at least 11x11"):
        model.feed_data({"gt": torch.rand(1, 3, 8, 8)})
    with pytest.raises(ValueError, match="multiple of 2"):
        model.feed_data({"gt": torch.rand(1, 3, 25, 25)})


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch) -> None:
    model = DANModel(make_opt(str(tmp_path)))
    model.save(0, 4)
    weights = torch.load(tmp_path / "net_g_4.pth", weights_only=True)
    state = torch.load(tmp_path / "4.state", weights_only=True)
    assert set(weights) == {"params", "dan_blocks"} and state["iter"] == 4 and "epoch_batches" in state["dan_blocks"]
    assert weights["dan_blocks"]["network_g"] == dict(model.opt["network_g"])
    for key, value in model.net_g.state_dict().items():
        assert torch.equal(weights["params"][key], value)
    before = (tmp_path / "net_g_4.pth").read_bytes()
    real_save = torch.save

    def broken_save(obj: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        real_save(obj, path, *args, **kwargs)
        with open(path, "r+b") as handle:  # a crash half-way: the file on disk is truncated
            handle.truncate(10)
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with torch.no_grad():
        next(model.net_g.parameters()).add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        model.save_network(model.net_g, "net_g", 4)
    assert (tmp_path / "net_g_4.pth").read_bytes() == before  # the old checkpoint is intact
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]  # no temp file left behind
