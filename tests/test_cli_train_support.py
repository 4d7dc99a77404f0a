"""Shared tiny option files for the CLI / resume / distributed tests (no tests here)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

#: a DANv2 small enough for CPU tests
TINY_NET: dict[str, Any] = {
    "type": "DANv2", "scale": 2, "kernel_size": 21, "code_length": 10, "setting": 1, "loop": 2,
    "nf": 8, "nb": 1, "ng": 1, "est_nf": 8, "est_nb": 1, "est_tail_nf": 8, "residual": "add",
}


def tiny_train_options(
    name: str, total_iter: int = 4, save_freq: int = 2, val_root: str | None = None, enlarge: int = 1,
    seed: int = 0, train_root: str = "builtin:skimage-train",
) -> dict[str, Any]:
    opt: dict[str, Any] = {
        "name": name,
        "model_type": "DANModel",
        "scale": 2,
        "num_gpu": 0,
        "manual_seed": seed,
        "degradation": {"preset": "setting1", "scale": 2},
        "datasets": {
            "train": {
                "name": "tiny", "type": "BlindSRHRDataset", "dataroot_gt": train_root,
                "io_backend": {"type": "disk"}, "gt_size": 32, "use_hflip": True, "use_rot": True,
                "num_worker_per_gpu": 0, "batch_size_per_gpu": 2, "dataset_enlarge_ratio": enlarge,
                "prefetch_mode": None,
            },
        },
        "network_g": dict(TINY_NET),
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": {
            "ema_decay": 0.5,
            "optim_g": {"type": "Adam", "lr": 1e-3, "weight_decay": 0, "betas": [0.9, 0.99]},
            "lr_E": 2e-3,
            "scheduler": {"type": "MultiStepLR", "milestones": [3], "gamma": 0.5},
            "total_iter": total_iter,
            "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
            "kernel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        "logger": {"print_freq": 1, "save_checkpoint_freq": save_freq, "use_tb_logger": False},
    }
    if val_root is not None:
        opt["datasets"]["val"] = {"name": "tinyval", "type": "BlindSRPairedDataset", "dataroot": val_root,
                                  "io_backend": {"type": "disk"}}
        opt["val"] = {"val_freq": 2, "save_img": True, "metrics": {
            "psnr": {"type": "calculate_psnr", "crop_border": 2, "test_y_channel": True}}}
    return opt


def tiny_test_options(name: str, weights: str, test_root: str) -> dict[str, Any]:
    return {
        "name": name, "model_type": "DANModel", "scale": 2, "num_gpu": 0, "manual_seed": 0,
        "datasets": {"test_1": {"name": "tinytest", "type": "BlindSRPairedDataset", "dataroot": test_root,
                                "io_backend": {"type": "disk"}}},
        "network_g": dict(TINY_NET),
        "path": {"pretrain_network_g": weights, "strict_load_g": True, "param_key_g": "params_ema"},
        "val": {"save_img": True, "suffix": None, "metrics": {
            "psnr": {"type": "calculate_psnr", "crop_border": 2, "test_y_channel": True}}},
    }


def write_yaml(path: Path | str, opt: dict[str, Any]) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(opt, handle, sort_keys=False)
    return os.fspath(path)


def tiny_testset(root: Path, size: int = 40, scale: int = 2) -> str:
    """A make-testset Gaussian8 folder from one random HR image."""
    from dan_blocks.data import make_testset

    hr = root / "hr"
    hr.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), (5, 5), 1.0)
    cv2.imwrite(str(hr / "img.png"), img)
    out = root / f"gaussian8_x{scale}"
    make_testset(str(hr), str(out), protocol="gaussian8", scale=scale, seed=0)
    return str(out)
