"""``dan-blocks quickstart``: train a small DANv2 on built-in photographs through BasicSR, test it, compare.

CPU only, no download: BasicSR's ``train_pipeline`` trains a reduced DANv2 (x4, setting-1 degradation made
on the fly) on ``builtin:skimage-train``; ``make_testset`` makes a Gaussian8 x4 set from the held-out
``builtin:skimage-test`` photographs; BasicSR's ``test_pipeline`` tests it (SR images + kernel pictures);
the bicubic upsampling of the same LR images is the baseline. Writes ``<out>/quickstart_results.json`` and
``<out>/quickstart.png`` (LR | bicubic | DAN | HR crops of one test image, estimated | true kernel), and ends by
printing the trained model's path and a ``dan-blocks sr`` command that uses it.

The console shows the quickstart's own progress lines, BasicSR's training progress (``[epoch: ..., iter: ...]``)
and warnings; BasicSR's banner, option dump and network dumps go only to the log files BasicSR writes
(``experiments/<name>/train_*.log``, ``results/<name>/test_*.log``). ``dan-blocks train`` / ``test`` are not
affected: the routing exists only while the quickstart runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from typing import Any

from .conventions import add_output, add_threads, command_parser, spelling_used
from .errors import UsageError, output_path, run_command

__all__ = [
    "COMMAND",
    "DEFAULT_OUT",
    "HELP",
    "bicubic_baseline",
    "build_parser",
    "dan_blocks_program",
    "main",
    "quickstart_test_options",
    "quickstart_train_options",
    "sr_command",
]

COMMAND = "quickstart"
HELP = "train a small DANv2 on built-in photos via BasicSR, test on Gaussian8 x4, compare with bicubic (CPU)"

DEFAULT_OUT = os.path.join("dan_blocks_out", "quickstart")
TRAIN_NAME = "quickstart_DANv2_x4"
TEST_NAME = "quickstart_DANv2_x4_test"

#: the reduced DANv2 (release: nf 64, nb 10, ng 5; estimator 32 wide, 5 blocks)
NETWORK: dict[str, Any] = {
    "type": "DANv2", "scale": 4, "kernel_size": 21, "code_length": 10, "setting": 1, "loop": 4,
    "nf": 16, "nb": 2, "ng": 1, "est_nf": 16, "est_nb": 1, "est_tail_nf": 32, "residual": "add",
    # the estimator subtracts each LR image's mean: without it a CPU-sized training only learns the average
    # kernel (flat kernel error across iterations); with it the estimate follows each image's blur
    "est_input_norm": True,
}
#: training data and schedule: HR patch, batch, learning rate (restorer and estimator)
GT_SIZE, BATCH, LR, LR_E = 64, 16, 2e-3, 2e-3
#: training iterations: about 2 minutes on 2 CPU cores (1000 left the kernel estimate of some seeds unimproved)
DEFAULT_ITERS = 1500
#: training blur widths: the Gaussian8 x4 test range (the paper trains x4 on [0.2, 4.0], for 400k+ iterations)
SIGMA: list[float] | None = [1.8, 3.2]


def quickstart_train_options(iters: int = DEFAULT_ITERS, seed: int = 0) -> dict[str, Any]:
    """BasicSR option dict of the quickstart training (``basicsr_options/quickstart.yml`` holds the same)."""
    return {
        "name": TRAIN_NAME,
        "model_type": "DANModel",
        "scale": 4,
        "num_gpu": 0,
        "manual_seed": seed,
        "degradation": {"preset": "setting1", "scale": 4, **({"sigma": list(SIGMA)} if SIGMA else {})},
        "datasets": {
            "train": {
                "name": "skimage-train",
                "type": "BlindSRHRDataset",
                "dataroot_gt": "builtin:skimage-train",
                "io_backend": {"type": "disk"},
                "gt_size": GT_SIZE,
                "use_hflip": True,
                "use_rot": True,
                "num_worker_per_gpu": 0,
                "batch_size_per_gpu": BATCH,
                "dataset_enlarge_ratio": 40,
                "prefetch_mode": None,
            },
        },
        "network_g": dict(NETWORK),
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": {
            "ema_decay": 0,
            "optim_g": {"type": "Adam", "lr": LR, "weight_decay": 0, "betas": [0.9, 0.99]},
            "lr_E": LR_E,
            "scheduler": {"type": "MultiStepLR", "milestones": [int(iters * 0.8)], "gamma": 0.5},
            "total_iter": int(iters),
            "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
            "kernel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        "logger": {"print_freq": 100, "save_checkpoint_freq": int(iters), "use_tb_logger": False,
                   "wandb": {"project": None, "resume_id": None}},
        "dist_params": {"backend": "nccl", "port": 29500},
    }


def quickstart_test_options(testset: str, weights: str, seed: int = 0) -> dict[str, Any]:
    """BasicSR option dict testing ``weights`` on the make-testset folder ``testset`` (Gaussian8 x4)."""
    return {
        "name": TEST_NAME,
        "model_type": "DANModel",
        "scale": 4,
        "num_gpu": 0,
        "manual_seed": seed,
        "datasets": {
            "test_1": {
                "name": "skimage-test_gaussian8_x4",
                "type": "BlindSRPairedDataset",
                "dataroot": testset,
                "io_backend": {"type": "disk"},
            },
        },
        "network_g": dict(NETWORK),
        "path": {"pretrain_network_g": weights, "strict_load_g": True, "param_key_g": "params"},
        "val": {
            "save_img": True,
            "suffix": None,
            "metrics": {
                "psnr": {"type": "calculate_psnr", "crop_border": 4, "test_y_channel": True},
                "ssim": {"type": "calculate_ssim", "crop_border": 4, "test_y_channel": True},
            },
        },
    }


def bicubic_baseline(dataset_opt: dict[str, Any], scale: int) -> dict[str, float]:
    """Mean Y-PSNR/SSIM (crop = scale, BasicSR's metrics) of MATLAB-bicubic x``scale`` upsampling of the LR."""
    from basicsr.data import build_dataset
    from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim
    from basicsr.utils import tensor2img

    from dan_blocks.degradations import imresize

    dataset = build_dataset({**dataset_opt, "phase": "test", "scale": scale})
    psnr = ssim = 0.0
    for index in range(len(dataset)):
        item = dataset[index]
        up = imresize(item["lq"][None].float(), float(scale))
        up_img, gt_img = tensor2img([up]), tensor2img([item["gt"][None]])
        psnr += calculate_psnr(up_img, gt_img, scale, test_y_channel=True)
        ssim += calculate_ssim(up_img, gt_img, scale, test_y_channel=True)
    count = max(1, len(dataset))
    return {"psnr_y": float(psnr / count), "ssim_y": float(ssim / count)}


def _write_yaml(path: str, opt: dict[str, Any]) -> None:
    import yaml

    from dan_blocks.utils.files import atomic_write_text

    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(opt, sort_keys=False))


def _table(results: dict[str, Any]) -> str:
    lines = [
        "| method  | Y-PSNR (dB) | Y-SSIM |",
        "|---------|-------------|--------|",
        f"| bicubic | {results['bicubic']['psnr_y']:11.2f} | {results['bicubic']['ssim_y']:.4f} |",
        f"| DANv2   | {results['dan']['psnr_y']:11.2f} | {results['dan']['ssim_y']:.4f} |",
        "",
        "per DAN iteration: Y-PSNR " + ", ".join(f"{v:.2f}" for v in results["psnr_y_per_iteration"]),
        "                   kernel error " + ", ".join(f"{v:.4f}" for v in results["kernel_error_per_iteration"]),
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(COMMAND, HELP + ". About 2-3 minutes on 2 CPU cores; ends by printing a `dan-blocks sr` "
                            "command that uses the trained model.", [
        "dan-blocks quickstart",
        "dan-blocks quickstart -o my_quickstart --iters 300 --threads 2   # shorter, on 2 threads",
    ])
    add_output(parser, f"output folder (default: {DEFAULT_OUT})", default=DEFAULT_OUT, metavar="DIR", old=("--out",))
    parser.add_argument("--iters", type=int, default=DEFAULT_ITERS, metavar="N",
                        help=f"training iterations (default: {DEFAULT_ITERS})")
    parser.add_argument("--seed", type=int, default=0, help="manual_seed of training and test set (default: 0)")
    add_threads(parser, default=1)
    return parser


def main(argv: list[str]) -> int:
    return run_command(COMMAND, lambda: _run(argv))


def _step(text: str) -> None:
    print(f"quickstart: {text}", flush=True)


def dan_blocks_program() -> list[str]:
    """The ``dan-blocks`` command of this installation, spelled so that it runs as printed in a new shell:
    ``dan-blocks`` when that name on PATH is this installation's script; else the script's full path beside the
    running Python (a virtual environment's ``bin/``, so that no activation is needed); else
    ``<python> -m dan_blocks``."""
    folder = os.path.dirname(os.path.abspath(sys.executable))
    for name in ("dan-blocks", "dan-blocks.exe"):
        script = os.path.join(folder, name)
        if os.path.isfile(script) and os.access(script, os.X_OK):
            found = shutil.which("dan-blocks")
            if found is not None and os.path.realpath(found) == os.path.realpath(script):
                return ["dan-blocks"]
            return [script]
    return [sys.executable, "-m", "dan_blocks"]


def sr_command(weights: str, inputs: str, output: str) -> str:
    """The ``dan-blocks sr`` command line (shell-quoted) that super-resolves ``inputs`` with ``weights``; it runs
    as printed (`dan_blocks_program`)."""
    return shlex.join([*dan_blocks_program(), "sr", "-m", weights, inputs, "-o", output])


def _run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    option = next(action for action in parser._actions if action.dest == "output")
    out = os.path.abspath(output_path(args.output, spelling_used(argv, option), folder=True))
    if args.iters < 1:
        raise UsageError(f"--iters must be >= 1, got {args.iters}")
    from dan_blocks.basicsr.console import basicsr_console_quiet

    with basicsr_console_quiet() as log_files:
        return _quickstart(args, out, log_files)


def _quickstart(args: argparse.Namespace, out: str, log_files: list[str]) -> int:
    import torch

    from dan_blocks.basicsr.console import pipeline_stdout
    from dan_blocks.cli._pipeline import run_basicsr_pipeline
    from dan_blocks.cli.quickstart_figure import quickstart_figure
    from dan_blocks.utils.files import atomic_write_text

    torch.set_num_threads(args.threads)
    from dan_blocks.data import make_testset

    os.makedirs(out, exist_ok=True)
    train_yml = os.path.join(out, "options", "quickstart_train.yml")
    _write_yaml(train_yml, quickstart_train_options(args.iters, args.seed))
    _step(f"1/4 training a small DANv2 x4 for {args.iters} iterations through BasicSR (CPU, "
          f"{args.threads} thread(s)); BasicSR's full log goes to {os.path.join(out, 'experiments', TRAIN_NAME)}")
    start = time.perf_counter()
    with pipeline_stdout():
        status = run_basicsr_pipeline("train", ["-opt", train_yml], root=out)
    train_seconds = time.perf_counter() - start
    if status:
        return status
    weights = os.path.join(out, "experiments", TRAIN_NAME, "models", "net_g_latest.pth")
    _step(f"trained in {train_seconds:.1f} s: {weights}")
    testset = os.path.join(out, "testset_gaussian8_x4")
    _step(f"2/4 making a Gaussian8 x4 test set from held-out photographs: {testset}")
    make_testset("builtin:skimage-test", testset, protocol="gaussian8", scale=4, seed=args.seed)
    test_opt = quickstart_test_options(testset, weights, args.seed)
    test_yml = os.path.join(out, "options", "quickstart_test.yml")
    _write_yaml(test_yml, test_opt)
    _step("3/4 testing it through BasicSR (SR images, kernel pictures, Y-PSNR/SSIM per DAN iteration)")
    with pipeline_stdout():
        status = run_basicsr_pipeline("test", ["-opt", test_yml], root=out)
    if status:
        return status
    dataset_opt = test_opt["datasets"]["test_1"]
    metrics_json = os.path.join(out, "results", TEST_NAME, f"metrics_{dataset_opt['name']}_{TEST_NAME}.json")
    with open(metrics_json, encoding="utf-8") as handle:
        dan = json.load(handle)
    _step("4/4 bicubic baseline and the comparison picture")
    pictures = os.path.join(out, "results", TEST_NAME, "visualization", dataset_opt["name"])
    figure = quickstart_figure(testset, pictures, os.path.join(out, "quickstart.png"), TEST_NAME)
    sr_out = os.path.join(out, "sr")
    command = sr_command(weights, figure["lr"], sr_out)
    results = {
        "bicubic": bicubic_baseline(dataset_opt, 4),
        "dan": {"psnr_y": dan["psnr"], "ssim_y": dan["ssim"]},
        "psnr_y_per_iteration": dan["psnr_y_per_iteration"],
        "kernel_error_per_iteration": dan["kernel_error_per_iteration"],
        "train_seconds": round(train_seconds, 2),
        "train_iterations": args.iters,
        "test_images": dan["images"],
        "pictures": pictures,
        "figure": figure["path"],
        "figure_shows": {key: figure[key] for key in ("image", "sigma", "crop", "psnr_y")},
        "model": weights,
        "sr_command": command,
        "logs": list(log_files),
    }
    atomic_write_text(os.path.join(out, "quickstart_results.json"), json.dumps(results, indent=2))
    print()
    print(_table(results))
    print(f"\ntrained in {results['train_seconds']:.1f} s; SR images and kernel pictures (estimate | truth): "
          f"{results['pictures']}")
    print(f"picture (LR | bicubic | DAN | HR, estimated | true kernel): {figure['path']}")
    print(f"results: {os.path.join(out, 'quickstart_results.json')}")
    print("BasicSR's logs: " + ", ".join(log_files))
    print(f"output folder: {out}")
    print(f"\ntrained model: {weights}")
    print("super-resolve your own pictures with it (files or folders; add --tile 256 for large ones):")
    print(f"  {command}")
    return 0
