"""GPU speed of dan-blocks against the release's structure (benchmarks/release_reference.py), identical weights.

Run: ``python benchmarks/bench_gpu.py [--quick] [--out results.json]``. One run prints, for DAN v1 and v2 at x4:

* inference (``super_resolve``; the release runs its estimator after every restorer pass) at batch 1/16 and LR
  64/256: release fp32 eager, plain, ``optimize(model)``, ``capture(model)`` (CUDA graphs) in fp32, bf16 and fp16,
  with the output's max relative difference from the release and the peak memory;
* a training step (forward, L1 on every iteration's SR and the kernel/code L1, backward, Adam) at batch 16 and 64,
  LR 64: release fp32 against dan-blocks fp32 and bf16 autocast, channels_last;
* ``upscale(..., tile_size=128)`` on the GPU against untiled.

Timings are medians of CUDA-event timings after warm-up. Without CUDA it runs as a smoke test on the CPU at tiny
sizes (the table's figures then mean nothing).
"""

# ruff: noqa: B023 - the timed lambdas are called within the loop iteration that defines them
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from release_reference import ReleaseDAN

import dan_blocks
from dan_blocks.fast import capture
from dan_blocks.formats.official import to_release_state_dict


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median milliseconds of ``fn`` (CUDA events on a GPU, perf_counter elsewhere)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def peak(fn: Callable[[], object], device: torch.device) -> float:
    if device.type != "cuda":
        return float("nan")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated(device) / 2**20


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def models(version: str, device: torch.device, small: bool) -> tuple[torch.nn.Module, ReleaseDAN]:
    torch.manual_seed(0)
    sizes = {"nb": 2, "ng": 1, "est_nb": 1} if small and version == "v2" else {"nb": 2, "est_nb": 1} if small else {}
    model = (dan_blocks.dan_v2 if version == "v2" else dan_blocks.dan_v1)(4, **sizes).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)
    release = ReleaseDAN(int(version[1]), 4, model.kernel_size, model.code_length, model.loop)
    if small:
        return model.to(device), release  # the stand-in has the release's sizes: not comparable
    release.load_state_dict(to_release_state_dict(model.state_dict()), strict=True)
    return model.to(device), release.eval().to(device)


def inference(
    version: str, device: torch.device, quick: bool, small: bool, repeats: int, compiled: bool = False
) -> list[dict]:
    model, release = models(version, device, small)
    rows = []
    grid = [(1, 64), (16, 64), (1, 256)] if not quick else [(1, 64), (16, 64)]
    if small:
        grid = [(1, 16)]
    for batch, size in grid:
        lr = torch.rand(batch, 3, size, size, device=device)
        with torch.inference_mode():
            ref = release(lr)[0][-1] if not small else model.super_resolve(lr)
            variants: dict[str, Callable[[], torch.Tensor]] = {
                "release fp32": (lambda: release(lr)[0][-1]) if not small else (lambda: model.super_resolve(lr)),
                "plain": lambda: model.super_resolve(lr),
            }
            fast = dan_blocks.optimize(copy.deepcopy(model))
            variants["optimize"] = lambda: fast.super_resolve(lr)
            for precision in ("fp32", "bf16", "fp16"):
                wrapped = capture(dan_blocks.optimize(copy.deepcopy(model)), precision)
                variants[f"captured {precision}"] = lambda w=wrapped: w(lr)
            if compiled:  # inductor's fused kernels inside the captured graph (compiles once per shape)
                for precision in ("fp32", "bf16"):
                    wrapped = capture(dan_blocks.optimize(copy.deepcopy(model)), precision, compile=True)
                    variants[f"captured+compile {precision}"] = lambda w=wrapped: w(lr)
            base = None
            for name, fn in variants.items():
                out = fn()
                ms = timed(fn, device, repeats)
                base = ms if base is None else base
                rows.append({"version": version, "batch": batch, "lr": size, "variant": name, "ms": round(ms, 2),
                             "speedup_vs_release": round(base / ms, 2), "max_rel_diff": f"{rel(out, ref):.1e}",
                             "peak_mib": round(peak(fn, device), 1)})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def train_step_fn(
    net: torch.nn.Module, lr: torch.Tensor, hr: torch.Tensor, release: bool, amp: str | None
) -> Callable[[], None]:
    opt = torch.optim.Adam(net.parameters(), 1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        ctx = torch.autocast(lr.device.type, dtype=torch.bfloat16) if amp == "bf16" else torch.autocast(
            lr.device.type, enabled=False)
        with ctx:
            srs = net(lr)[0] if release else net(lr).srs
            loss = sum(F.l1_loss(sr.float(), hr) for sr in srs)
        loss.backward()
        opt.step()

    return step


def training(version: str, device: torch.device, quick: bool, small: bool, repeats: int) -> list[dict]:
    rows = []
    for batch in ([16, 64] if not small else [2]):
        model, release = models(version, device, small)
        release.train()
        model.train()
        size = 64 if not small else 16
        lr = torch.rand(batch, 3, size, size, device=device)
        hr = torch.rand(batch, 3, 4 * size, 4 * size, device=device)
        steps = {"release fp32": train_step_fn(release, lr, hr, True, None) if not small else None,
                 "dan-blocks fp32": train_step_fn(model, lr, hr, False, None)}
        fast = dan_blocks.optimize(copy.deepcopy(model), channels_last=True)
        steps["dan-blocks optimize bf16 channels_last"] = train_step_fn(
            fast, lr.contiguous(memory_format=torch.channels_last), hr, False, "bf16")
        steps["dan-blocks optimize bf16 NCHW"] = train_step_fn(
            dan_blocks.optimize(copy.deepcopy(model), channels_last=False), lr, hr, False, "bf16")
        base = None
        for name, fn in steps.items():
            if fn is None:
                continue
            ms = timed(fn, device, max(3, repeats // 2), warmup=2)
            base = ms if base is None else base
            rows.append({"version": version, "batch": batch, "lr": size, "variant": f"train {name}", "ms": round(ms, 1),
                         "speedup_vs_release": round(base / ms, 2), "peak_mib": round(peak(fn, device), 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def tiled(device: torch.device, small: bool) -> dict:
    model, _ = models("v2", device, small)
    model = dan_blocks.DANv2(4, est_input_norm=True, nb=2, ng=1, est_nb=1).eval().to(device) if small else model
    lr = torch.rand(1, 3, 48 if small else 300, 40 if small else 260, device=device)
    with torch.inference_mode():
        whole = model(lr).sr
        tiles = dan_blocks.upscale(copy.deepcopy(model), lr, tile_size=16 if small else 128).sr
    row = {"variant": "upscale tiled on " + device.type, "max_rel_diff": f"{rel(tiles, whole):.1e}"}
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer sizes")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    parser.add_argument("--sections", default="inference,train,tiled")
    parser.add_argument("--compile", action="store_true", help="also time capture(model, compile=True)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True  # as BasicSR's training sets it; the same for every variant
    small = device.type != "cuda"
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (smoke test: tiny sizes)"
    print(f"# {name}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}", flush=True)
    rows: list[dict] = []
    sections = args.sections.split(",")
    for version in ("v2", "v1"):
        if "inference" in sections:
            rows += inference(version, device, args.quick, small, args.repeats if not small else 1, args.compile)
        if "train" in sections:
            rows += training(version, device, args.quick, small, args.repeats if not small else 1)
    if "tiled" in sections:
        rows.append(tiled(device, small))
    if args.out:
        args.out.write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
