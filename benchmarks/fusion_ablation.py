"""Fusion ablation: train every recipe of ``basicsr_options/fusion/`` through BasicSR, test it, tabulate.

Each recipe is the quickstart's DANv2 x4 (same photographs, blur widths, estimator, PCA and schedule) with only
the restorer's ``fusion`` changed and its depth chosen for about equal parameter counts. For every recipe and
seed this script

1. trains it with ``basicsr.train.train_pipeline`` (the recipe's ``manual_seed`` replaced by the seed,
   ``total_iter`` by ``--iters`` when given),
2. tests the last weights with ``basicsr.test.test_pipeline`` on the quickstart's Gaussian8 x4 test set
   (``make_testset("builtin:skimage-test", protocol="gaussian8", scale=4, seed=seed)``, the photographs the
   training never sees): Y-PSNR (crop 4, BasicSR's ``calculate_psnr``) and the kernel error (L1 between the
   estimated and the true kernel, DANModel's ``kernel_error``) after the last DAN iteration,
3. times one forward of the whole DAN (``loop`` iterations) on a fixed LR size, plain and after
   ``dan_blocks.optimize()``, median of ``--repeats`` runs on ``--threads`` threads,

measures the MATLAB-bicubic upsampling of the same LR images as the baseline, then writes
``fusion_ablation.json`` and ``fusion_ablation.md`` (the table docs/fusion.md shows) to the output folder
(atomically). A folder that already holds a ``fusion_ablation.json`` is refused: one run per folder.

Run: ``python benchmarks/fusion_ablation.py [-o DIR] [--iters N] [--seeds 0 1] [--only sft film] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "basicsr_options" / "fusion"
DEFAULT_OUT = os.path.join("dan_blocks_out", "fusion_ablation")
#: LR size (square) and batch of the speed measurement
SPEED_LR, SPEED_BATCH = 64, 1


def recipe_files(only: list[str] | None = None) -> dict[str, Path]:
    """Fusion name -> recipe file (``fusion_<name>_x4.yml``), in the registry's order; ``only`` selects some.

    Raises:
        SystemExit: a name in ``only`` has no recipe (the message lists the recipes).
    """
    files = {p.stem[len("fusion_"):-len("_x4")]: p for p in sorted(RECIPES.glob("fusion_*_x4.yml"))}
    if only:
        unknown = [name for name in only if name not in files]
        if unknown:
            raise SystemExit(f"fusion_ablation: no recipe for {', '.join(unknown)} (recipes: {', '.join(files)})")
        files = {name: files[name] for name in only}
    return files


def read_recipe(path: Path) -> dict[str, Any]:
    from dan_blocks.utils.options import read_yaml_file

    return dict(read_yaml_file(str(path), "fusion recipe"))


def parameter_counts(network_opt: dict[str, Any]) -> dict[str, int]:
    """Parameters of the network an option block builds: restorer, estimator and total."""
    from dan_blocks.archs import build_arch

    net = build_arch(copy.deepcopy(network_opt), "network_g")
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    return {"restorer": count(net.restorer), "estimator": count(net.estimator), "total": count(net)}


def forward_ms(network_opt: dict[str, Any], threads: int, repeats: int) -> dict[str, float]:
    """Median milliseconds of one forward (fp32, CPU, batch `SPEED_BATCH`, LR `SPEED_LR` square), plain and
    optimised (`dan_blocks.optimize`), interleaved round by round."""
    import torch

    from dan_blocks import optimize
    from dan_blocks.archs import build_arch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    plain = build_arch(copy.deepcopy(network_opt), "network_g").eval()
    fast = optimize(copy.deepcopy(plain), channels_last=True, device="cpu")
    lr = torch.rand(SPEED_BATCH, 3, SPEED_LR, SPEED_LR)
    times: dict[str, list[float]] = {"plain": [], "optimized": []}
    with torch.inference_mode():
        for model in (plain, fast):
            model(lr)  # warm-up
        for _ in range(repeats):
            for key, model in (("plain", plain), ("optimized", fast)):
                start = time.perf_counter()
                model(lr)
                times[key].append((time.perf_counter() - start) * 1000)
    return {key: round(statistics.median(values), 1) for key, values in times.items()}


def _write_yaml(path: str, opt: dict[str, Any]) -> None:
    import yaml

    from dan_blocks.utils.files import atomic_write_text

    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(opt, sort_keys=False))


def train_and_test(name: str, recipe: dict[str, Any], seed: int, iters: int | None, out: str,
                   testset: str) -> dict[str, Any]:
    """Train ``recipe`` with ``seed`` through BasicSR in ``out``, test it on ``testset``; the test's metrics."""
    from dan_blocks.basicsr.console import pipeline_stdout
    from dan_blocks.cli._pipeline import run_basicsr_pipeline
    from dan_blocks.cli.quickstart import quickstart_test_options

    train = copy.deepcopy(recipe)
    train["name"] = f"{recipe['name']}_seed{seed}"
    train["manual_seed"] = seed
    if iters is not None:
        train["train"]["total_iter"] = iters
        train["train"]["scheduler"]["milestones"] = [max(1, int(iters * 0.8))]
        train["logger"]["save_checkpoint_freq"] = iters
    train_yml = os.path.join(out, "options", f"{train['name']}_train.yml")
    _write_yaml(train_yml, train)
    start = time.perf_counter()
    with pipeline_stdout():
        status = run_basicsr_pipeline("train", ["-opt", train_yml], root=out)
    train_seconds = time.perf_counter() - start
    if status:
        raise SystemExit(f"fusion_ablation: training {name} (seed {seed}) failed with status {status}")
    weights = os.path.join(out, "experiments", train["name"], "models", "net_g_latest.pth")
    test = quickstart_test_options(testset, weights, seed)
    test["name"] = f"{train['name']}_test"
    test["network_g"] = copy.deepcopy(recipe["network_g"])
    test["val"]["save_img"] = False
    test_yml = os.path.join(out, "options", f"{train['name']}_test.yml")
    _write_yaml(test_yml, test)
    with pipeline_stdout():
        status = run_basicsr_pipeline("test", ["-opt", test_yml], root=out)
    if status:
        raise SystemExit(f"fusion_ablation: testing {name} (seed {seed}) failed with status {status}")
    dataset = test["datasets"]["test_1"]["name"]
    with open(os.path.join(out, "results", test["name"], f"metrics_{dataset}_{test['name']}.json"),
              encoding="utf-8") as handle:
        metrics = json.load(handle)
    return {
        "seed": seed,
        "iterations": int(train["train"]["total_iter"]),
        "train_seconds": round(train_seconds, 1),
        "psnr_y": float(metrics["psnr"]),
        "kernel_error": float(metrics["kernel_error_per_iteration"][-1]),
        "psnr_y_per_iteration": metrics["psnr_y_per_iteration"],
        "kernel_error_per_iteration": metrics["kernel_error_per_iteration"],
        "test_images": metrics["images"],
        "weights": weights,
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The ablation table: one row per fusion, means over the seeds."""
    lines = [
        "| fusion | restorer params | total params | Y-PSNR (dB) | kernel error | ms / forward (plain) "
        "| ms / forward (optimized) | seeds | iterations |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        lines.append(
            f"| `{row['fusion']}` | {row['params']['restorer']:,} | {row['params']['total']:,} "
            f"| {row['psnr_y']:.2f} | {row['kernel_error']:.4f} | {row['ms_per_forward']['plain']:.1f} "
            f"| {row['ms_per_forward']['optimized']:.1f} | {', '.join(str(r['seed']) for r in row['runs'])} "
            f"| {row['runs'][0]['iterations']} |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/fusion_ablation.py",
        description="Train, test and time every fusion recipe of basicsr_options/fusion/ (CPU).",
    )
    parser.add_argument("-o", "--output", default=DEFAULT_OUT, metavar="DIR",
                        help=f"output folder, one run per folder (default: {DEFAULT_OUT})")
    parser.add_argument("--iters", type=int, default=None, metavar="N",
                        help="training iterations (default: the recipes' total_iter)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="S",
                        help="seeds: manual_seed of the training and of the test set (default: 0)")
    parser.add_argument("--only", nargs="+", default=None, metavar="FUSION", help="only these fusions")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--repeats", type=int, default=7, help="timed forwards per variant (default: 7)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.iters is not None and args.iters < 1:
        raise SystemExit(f"fusion_ablation: --iters must be >= 1, got {args.iters}")
    if args.threads < 1 or args.repeats < 1:
        raise SystemExit("fusion_ablation: --threads and --repeats must be >= 1")
    out = os.path.abspath(args.output)
    if os.path.exists(os.path.join(out, "fusion_ablation.json")):
        raise SystemExit(f"fusion_ablation: {out} already holds a finished ablation; choose another -o folder")
    files = recipe_files(args.only)

    import torch

    from dan_blocks.basicsr.console import basicsr_console_quiet
    from dan_blocks.data import make_testset
    from dan_blocks.utils.files import atomic_write_text

    torch.set_num_threads(args.threads)
    os.makedirs(out, exist_ok=True)
    testsets = {}
    for seed in args.seeds:
        testsets[seed] = os.path.join(out, f"testset_gaussian8_x4_seed{seed}")
        if not os.path.exists(os.path.join(testsets[seed], "manifest.json")):
            make_testset("builtin:skimage-test", testsets[seed], protocol="gaussian8", scale=4, seed=seed,
                         progress=False)
    from dan_blocks.cli.quickstart import bicubic_baseline, quickstart_test_options

    bicubic = {seed: bicubic_baseline(quickstart_test_options(testsets[seed], "", seed)["datasets"]["test_1"], 4)
               for seed in args.seeds}
    rows = []
    started = time.perf_counter()
    with basicsr_console_quiet():
        for name, path in files.items():
            recipe = read_recipe(path)
            runs = []
            for seed in args.seeds:
                print(f"fusion_ablation: {name} seed {seed}: training and testing", flush=True)
                runs.append(train_and_test(name, recipe, seed, args.iters, out, testsets[seed]))
                torch.set_num_threads(args.threads)
            row = {
                "fusion": name,
                "recipe": path.relative_to(ROOT).as_posix(),
                "network_g": recipe["network_g"],
                "params": parameter_counts(recipe["network_g"]),
                "psnr_y": statistics.fmean(r["psnr_y"] for r in runs),
                "kernel_error": statistics.fmean(r["kernel_error"] for r in runs),
                "ms_per_forward": forward_ms(recipe["network_g"], args.threads, args.repeats),
                "runs": runs,
            }
            print(f"fusion_ablation: {name}: Y-PSNR {row['psnr_y']:.2f} dB, kernel error {row['kernel_error']:.4f}, "
                  f"{row['ms_per_forward']['plain']:.1f} ms / forward", flush=True)
            rows.append(row)
    result = {
        "rows": rows,
        "bicubic": {"psnr_y": statistics.fmean(b["psnr_y"] for b in bicubic.values()), "per_seed": bicubic},
        "seeds": args.seeds,
        "threads": args.threads,
        "speed_input": {"batch": SPEED_BATCH, "lr": [SPEED_LR, SPEED_LR], "dtype": "float32", "device": "cpu"},
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "python": sys.version.split()[0]},
        "seconds": round(time.perf_counter() - started, 1),
    }
    table = markdown_table(rows) + (f"\nMATLAB-bicubic upsampling of the same LR images: "
                                    f"{result['bicubic']['psnr_y']:.2f} dB Y-PSNR.\n")
    atomic_write_text(os.path.join(out, "fusion_ablation.md"), table)
    atomic_write_text(os.path.join(out, "fusion_ablation.json"), json.dumps(result, indent=2))
    print()
    print(table)
    print(f"written: {os.path.join(out, 'fusion_ablation.md')} and fusion_ablation.json ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
