"""DAN v1/v2 speed: ``dan_blocks.optimize(model)`` vs the plain model and the release's structure, the conv limit,
latency grid, training, torch.compile and import time.

Run: ``python benchmarks/bench_dan.py [--quick] [--threads 2] [--repeats 7] [--sections conv,ratio,...]``.

Sections (all by default; ``--quick`` runs a reduced set in a few minutes on 2 cores):

* ``conv``   the machine's convolution limit: one 64->64 3x3 conv at the LR size, channels_last and NCHW;
* ``ratio``  ``optimize(model)`` vs the plain model (NCHW weights and activations, code stretched and
  concatenated, estimator after the last restorer) and the release-structured stand-in
  (benchmarks/release_reference.py) on identical weights, fp32, batch 1, x4, LR 64: output
  agreement (<= 1e-5 relative), interleaved repeats, medians, per-round ratios, model FLOPs and achieved
  FLOP/s as a fraction of the channels_last conv limit;
* ``blocks`` one CRB(64, 10) vs one DPCB(64, 64, 3, 1) at 64x64;
* ``grid``   forward latency and peak activation memory, v1/v2 x x2/x4 x LR 64/256 x batch 1/8 x fp32/bf16;
* ``train``  one training step (forward, L1 losses, backward, Adam), fast vs plain;
* ``trainmem`` the training step against the release stand-in on identical weights (forward, L1 on every SR,
  backward, Adam, fp32, as bench_gpu.py's): bytes saved for backward by the forward (distinct storages seen by
  ``torch.autograd.graph.saved_tensors_hooks``, weights excluded), peak tensor memory of a step, step time, and
  the loss and gradient agreement with the release (release, plain, ``optimize()``);
* ``bf16``   bfloat16 autocast on the CPU vs fp32, optimised model, x4 LR 64 batch 1;
* ``compile`` ``torch.compile`` of the optimised model vs eager, x4 LR 64 batch 1 (compile time reported apart);
* ``import`` ``import dan_blocks`` time on top of torch, in fresh interpreters;
* ``gpu``    (when CUDA is present) fp32 NCHW vs fp32/bf16/fp16 channels_last throughput and peak memory.

FLOPs are counted analytically (2 x the multiply-adds of every Conv2d, from its shapes, release structure),
by a forward pass on the ``meta`` device. Peak memory on the CPU is the high-water mark of tensor allocations
during one call (torch.profiler memory trace; weights excluded); on CUDA ``max_memory_allocated``.
Timings interleave the compared variants round by round and report medians: the machine may be shared.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from dan_blocks import optimize
from dan_blocks.archs import DAN
from dan_blocks.formats.official import to_release_state_dict
from dan_blocks.layers import CRB, DPCB

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bench_utils import (
    BUILDERS,
    build_pair,
    conv_flops,
    interleaved,
    median_ms,
    peak_cpu_memory,
    relative_error,
    saved_for_backward,
    table,
)
from release_reference import ReleaseDAN

__all__ = ["main"]

SECTIONS = ("conv", "ratio", "blocks", "grid", "train", "trainmem", "bf16", "compile", "import", "gpu")


def section_conv(args: argparse.Namespace) -> float:
    """Conv limit (FLOP/s) of a 64->64 3x3 conv on (1, 64, 64, 64), channels_last, fp32."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 64, 64, generator=gen)
    w = torch.randn(64, 64, 3, 3, generator=gen) * 0.05
    b = torch.randn(64, generator=gen)
    xc, wc = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
    flops = 2.0 * 64 * 64 * 9 * 64 * 64
    with torch.no_grad():
        times = interleaved(
            {"channels_last": lambda: F.conv2d(xc, wc, b, 1, 1), "NCHW": lambda: F.conv2d(x, w, b, 1, 1)},
            repeats=max(30, 5 * args.repeats), warmup=3,
        )
    rows = [[name, f"{median_ms(t):.3f}", f"{flops / statistics.median(t) / 1e9:.0f}"] for name, t in times.items()]
    print("## Conv limit: 64->64 3x3 conv, (1, 64, 64, 64), fp32")
    table(["layout", "median ms", "GFLOP/s"], rows)
    return flops / statistics.median(times["channels_last"])


def _release_stand_in(model: DAN, version: str, scale: int) -> ReleaseDAN:
    """The release-structured stand-in (benchmarks/release_reference.py) with ``model``'s weights, loaded strictly."""
    ref = ReleaseDAN(int(version[1]), scale, model.kernel_size, model.code_length, model.loop).eval()
    ref.load_state_dict(to_release_state_dict(model.state_dict()), strict=True)
    return ref


def section_ratio(args: argparse.Namespace, limit: float | None) -> None:
    print(f"## optimize(model) vs the release structure, x4, LR 64x64, batch 1, fp32, {args.threads} threads")
    rows = []
    for version in args.versions:
        fast, plain = build_pair(version, 4)
        release = _release_stand_in(fast, version, 4)
        lr = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
        flops = conv_flops(plain, lr)
        with torch.no_grad():
            ref_srs, _ = release(lr)
            out, sr_only, plain_out = fast(lr), fast.super_resolve(lr), plain(lr)
            err = max(relative_error(a, b) for a, b in zip(out.srs, ref_srs, strict=True))
            err = max(err, relative_error(sr_only, ref_srs[-1]))
            plain_err = max(relative_error(a, b) for a, b in zip(plain_out.srs, ref_srs, strict=True))
            if max(err, plain_err) > 1e-5:
                raise SystemExit(f"{version}: outputs disagree with the release stand-in: {err:.2e} relative")
            fns: dict[str, Callable[[], object]] = {
                "release stand-in": lambda m=release, x=lr: m(x),
                "plain": lambda m=plain, x=lr: m(x),
                "fast": lambda m=fast, x=lr: m(x),
                "fast_sr": lambda m=fast, x=lr: m.super_resolve(x),
            }
            times = interleaved(fns, repeats=args.repeats)
        med = {k: statistics.median(v) for k, v in times.items()}
        per_round = [r / f for r, f in zip(times["release stand-in"], times["fast"], strict=True)]
        for name in fns:
            rate = flops / med[name]
            frac = f"{rate / limit:.0%}" if limit else "-"
            rows.append([version, name, f"{1e3 * med[name]:.0f}", f"{med['release stand-in'] / med[name]:.2f}x",
                         f"{med['plain'] / med[name]:.2f}x", f"{flops / 1e9:.1f}", f"{rate / 1e9:.0f}", frac,
                         f"{err:.1e}" if name.startswith("fast") else f"{plain_err:.1e}" if name == "plain" else "-"])
        print(f"{version}: per-round release/fast ratios {[round(r, 2) for r in per_round]}, "
              f"median {statistics.median(per_round):.2f}")
    print()
    table(["model", "path", "median ms", "speed-up vs release", "vs plain", "GFLOP", "GFLOP/s", "of conv limit",
           "max rel. diff vs release"], rows)


def section_blocks(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    crb, dpcb = optimize(CRB(64, 10).eval()), optimize(DPCB(64, 64, 3, 1).eval())
    feat = torch.rand(1, 64, 64, 64).contiguous(memory_format=torch.channels_last)
    code, cond = torch.rand(1, 10), torch.rand(1, 64, 1, 1)
    flops = {
        "CRB(64, 10)": 2.0 * 64 * 64 * 9 * (74 * 74 + 74 * 64),
        "DPCB(64, 64, 3, 1)": 2.0 * 64 * 64 * 9 * 2 * 64 * 64,
    }
    with torch.no_grad():
        times = interleaved({"CRB(64, 10)": lambda: crb(feat, code), "DPCB(64, 64, 3, 1)": lambda: dpcb(feat, cond)},
                            repeats=max(20, 3 * args.repeats), warmup=3)
    rows = [[n, f"{median_ms(t):.3f}", f"{flops[n] / 1e9:.2f}"] for n, t in times.items()]
    ratio = statistics.median(times["CRB(64, 10)"]) / statistics.median(times["DPCB(64, 64, 3, 1)"])
    print("## Block cost, (1, 64, 64, 64), fp32, optimised blocks (GFLOP: release structure)")
    table(["block", "median ms", "GFLOP"], rows)
    print(f"CRB / DPCB time: {ratio:.2f}\n")


def section_grid(args: argparse.Namespace) -> None:
    print("## Forward latency and peak activation memory (optimised model, forward() = full DANOutput)")
    rows = []
    for version in args.versions:
        for scale in args.scales:
            torch.manual_seed(0)
            model32 = optimize(BUILDERS[version](scale).eval())
            model16 = copy.deepcopy(model32).to(torch.bfloat16)
            for size in args.sizes:
                for batch in args.batches:
                    lr = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(2))
                    for dtype in args.dtypes:
                        model = model32 if dtype == "fp32" else model16
                        x = lr if dtype == "fp32" else lr.to(torch.bfloat16)
                        with torch.no_grad():
                            start = time.perf_counter()
                            out = model(x)
                            first = time.perf_counter() - start
                            reps = max(1, min(args.repeats, int(args.budget / max(first, 1e-3))))
                            times = interleaved({"f": lambda m=model, x=x: m(x)}, repeats=reps, warmup=0)["f"]
                            peak = peak_cpu_memory(lambda m=model, x=x: m(x))
                            note = "-"
                            if dtype != "fp32":
                                note = f"{relative_error(out.sr.float(), model32(lr).sr):.1e}"
                        med = statistics.median(times)
                        rows.append([version, f"x{scale}", size, batch, dtype, f"{1e3 * med:.0f}", reps,
                                     f"{peak / 2**20:.0f}", f"{batch / med:.2f}", note])
    table(["model", "scale", "LR", "batch", "dtype", "median ms", "runs", "peak MiB", "images/s",
            "rel. diff vs fp32"], rows)


def _train_step(model: DAN, opt: torch.optim.Optimizer, lr: Tensor, hr: Tensor, target: Tensor) -> None:
    out = model(lr)
    if model.output_kind == "kernel":
        kernel = out.kernels[-1]
        assert kernel is not None
        est = kernel.reshape(kernel.shape[0], -1)
    else:
        est = out.codes[-1]
    loss = F.l1_loss(out.sr, hr) + F.l1_loss(est, target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def section_train(args: argparse.Namespace) -> None:
    size, batch = args.train_size, args.train_batch
    print(f"## Training step (forward, L1 losses, backward, Adam), x4, LR {size}, batch {batch}, fp32")
    rows = []
    for version in args.versions:
        fast, plain = build_pair(version, 4)
        fast.train()
        plain.train()
        gen = torch.Generator().manual_seed(3)
        lr = torch.rand(batch, 3, size, size, generator=gen)
        hr = torch.rand(batch, 3, 4 * size, 4 * size, generator=gen)
        width = fast.kernel_size**2 if fast.output_kind == "kernel" else fast.code_length
        target = torch.rand(batch, width, generator=gen)
        opts = {m: torch.optim.Adam(m.parameters(), lr=1e-7) for m in (fast, plain)}
        fns: dict[str, Callable[[], object]] = {
            name: lambda m=m, o=opts[m], x=lr, y=hr, t=target: _train_step(m, o, x, y, t)
            for name, m in (("plain", plain), ("fast", fast))
        }
        times = interleaved(fns, repeats=max(2, args.repeats // 2))
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append([version, f"{1e3 * med['plain']:.0f}", f"{1e3 * med['fast']:.0f}",
                     f"{med['plain'] / med['fast']:.2f}x"])
    table(["model", "plain ms", "fast ms", "speed-up"], rows)


def _srs(model: torch.nn.Module, lr: Tensor) -> list[Tensor]:
    out = model(lr)
    return list(out.srs) if hasattr(out, "srs") else list(out[0])  # ReleaseDAN: (srs, estimates)


def _sr_loss(model: torch.nn.Module, lr: Tensor, hr: Tensor) -> Tensor:
    return torch.stack([F.l1_loss(sr, hr) for sr in _srs(model, lr)]).sum()


def _adam_step(model: torch.nn.Module, opt: torch.optim.Optimizer, lr: Tensor, hr: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    _sr_loss(model, lr, hr).backward()
    opt.step()


def section_trainmem(args: argparse.Namespace) -> None:
    size, batch = args.train_size, args.train_batch
    print(f"## Training step vs the release stand-in (forward, L1 on every SR, backward, Adam), x4, LR {size}, "
          f"batch {batch}, fp32, {args.threads} threads")
    rows = []
    for version in args.versions:
        torch.manual_seed(0)
        plain = BUILDERS[version](4).train()
        release = _release_stand_in(plain, version, 4).train()
        fast = optimize(copy.deepcopy(plain), channels_last=False).train()
        gen = torch.Generator().manual_seed(5)
        lr = torch.rand(batch, 3, size, size, generator=gen)
        hr = torch.rand(batch, 3, 4 * size, 4 * size, generator=gen)
        models = {"release": release, "plain": plain, "optimize()": fast}
        saved = {name: saved_for_backward(m, lambda m=m, x=lr, y=hr: _sr_loss(m, x, y)) for name, m in models.items()}
        losses, grads = {}, {}
        for name, m in models.items():
            m.zero_grad(set_to_none=True)
            loss = _sr_loss(m, lr, hr)
            loss.backward()
            losses[name] = loss.detach()
            named = {k: p.grad for k, p in m.named_parameters() if p.grad is not None}
            grads[name] = named if name == "release" else to_release_state_dict({**m.state_dict(), **named})
        opts = {name: torch.optim.Adam(m.parameters(), lr=1e-7) for name, m in models.items()}

        fns: dict[str, Callable[[], object]] = {
            name: lambda m=m, o=opts[name], x=lr, y=hr: _adam_step(m, o, x, y) for name, m in models.items()
        }
        times = interleaved(fns, repeats=max(2, args.repeats // 2))
        for name in models:
            ref_grads = grads["release"]
            grad_err = max(relative_error(grads[name][k], g) for k, g in ref_grads.items())
            rows.append([version, name, f"{saved[name] / 2**20:.1f}", f"{saved[name] / saved['release']:.3f}",
                         f"{peak_cpu_memory(fns[name]) / 2**20:.0f}", f"{median_ms(times[name]):.0f}",
                         f"{statistics.median(times['release']) / statistics.median(times[name]):.2f}x",
                         f"{relative_error(losses[name], losses['release']):.1e}", f"{grad_err:.1e}"])
    table(["model", "variant", "saved for backward MiB", "vs release", "step peak MiB", "step ms", "speed vs release",
           "loss rel. diff", "max grad rel. diff"], rows)


def section_bf16(args: argparse.Namespace) -> None:
    print(f"## bfloat16 autocast on the CPU vs fp32, optimised model, x4, LR 64, batch 1, {args.threads} threads")
    rows = []
    for version in args.versions:
        fast, _ = build_pair(version, 4)
        lr = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))

        def bf16(m: DAN = fast, x: Tensor = lr) -> Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return m.super_resolve(x)

        with torch.no_grad():
            err = relative_error(bf16().float(), fast.super_resolve(lr))
            times = interleaved({"fp32": lambda m=fast, x=lr: m.super_resolve(x), "bf16": bf16}, repeats=args.repeats)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append([version, f"{1e3 * med['fp32']:.0f}", f"{1e3 * med['bf16']:.0f}",
                     f"{med['fp32'] / med['bf16']:.2f}x", f"{err:.1e}"])
    table(["model", "fp32 ms", "bf16 autocast ms", "speed-up", "max rel. diff (random weights)"], rows)


def section_compile(args: argparse.Namespace) -> None:
    print(f"## torch.compile(optimize(model)) vs eager, x4, LR 64, batch 1, fp32, {args.threads} threads")
    rows = []
    for version in args.versions:
        fast, plain = build_pair(version, 4)
        lr = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
        compiled = torch.compile(fast.super_resolve)
        with torch.no_grad():
            start = time.perf_counter()
            out = compiled(lr)
            compile_s = time.perf_counter() - start
            err = relative_error(out, plain.super_resolve(lr))
            fns: dict[str, Callable[[], object]] = {
                "eager": lambda m=fast, x=lr: m.super_resolve(x),
                "compiled": lambda c=compiled, x=lr: c(x),
                "plain eager": lambda m=plain, x=lr: m.super_resolve(x),
            }
            times = interleaved(fns, repeats=args.repeats)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append([version, f"{1e3 * med['plain eager']:.0f}", f"{1e3 * med['eager']:.0f}",
                     f"{1e3 * med['compiled']:.0f}", f"{med['eager'] / med['compiled']:.2f}x", f"{compile_s:.0f}",
                     f"{err:.1e}"])
    table(["model", "plain eager ms", "optimised eager ms", "compiled ms", "compiled vs optimised eager",
           "first call s", "max rel. diff vs plain"], rows)


def section_import(args: argparse.Namespace) -> None:
    import subprocess

    code = ("import time; t = time.perf_counter(); import torch; t1 = time.perf_counter(); import dan_blocks; "
            "t2 = time.perf_counter(); print(t1 - t, t2 - t1)")
    runs = [tuple(map(float, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                            check=True).stdout.split())) for _ in range(max(3, args.repeats))]
    torch_s, ours_s = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    print("## import time, fresh interpreters (median)")
    table(["import torch s", "import dan_blocks s (on top of torch)", "ratio"],
          [[f"{torch_s:.2f}", f"{ours_s:.3f}", f"{ours_s / torch_s:.1%}"]])


def section_gpu(args: argparse.Namespace) -> None:
    if not torch.cuda.is_available():
        print("## GPU: no CUDA device, skipped\n")
        return
    dev = torch.device("cuda")
    print(f"## GPU ({torch.cuda.get_device_name(dev)}): forward throughput, x4, batch {args.gpu_batch}")
    rows = []
    for version in args.versions:
        fast, plain = build_pair(version, 4)
        fast, plain = fast.to(dev), plain.to(dev)
        for size in args.sizes:
            lr = torch.rand(args.gpu_batch, 3, size, size, device=dev)
            variants: dict[str, Callable[[], object]] = {
                "fp32 NCHW plain": lambda m=plain, x=lr: m(x),
                "fp32 channels_last": lambda m=fast, x=lr: m(x),
            }
            for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
                def run(m: DAN = fast, x: Tensor = lr, dtype: torch.dtype = dtype) -> object:
                    with torch.autocast("cuda", dtype=dtype):
                        return m(x)
                variants[f"{name} autocast channels_last"] = run
            for name, fn in variants.items():
                with torch.no_grad():
                    fn()
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    times = []
                    for _ in range(args.repeats):
                        start = time.perf_counter()
                        fn()
                        torch.cuda.synchronize()
                        times.append(time.perf_counter() - start)
                med = statistics.median(times)
                rows.append([version, size, name, f"{1e3 * med:.1f}", f"{args.gpu_batch / med:.1f}",
                             f"{torch.cuda.max_memory_allocated() / 2**20:.0f}"])
    table(["model", "LR", "variant", "median ms", "images/s", "peak MiB"], rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced set: a few minutes on 2 cores")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list of {SECTIONS}")
    parser.add_argument("--versions", default="v2,v1")
    parser.add_argument("--budget", type=float, default=20.0, help="grid: seconds per configuration (caps runs)")
    parser.add_argument("--scales", help="grid: comma list (default 2,4; quick 4)")
    parser.add_argument("--sizes", help="grid/gpu: LR sizes (default 64,256; quick 64)")
    parser.add_argument("--batches", help="grid: batch sizes (default 1,8; quick 1)")
    parser.add_argument("--dtypes", help="grid: fp32,bf16 (default both)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS)) + sorted(set(args.versions) - set(BUILDERS))
    if unknown:
        parser.error(f"unknown section/version {unknown}; sections: {SECTIONS}, versions: {sorted(BUILDERS)}")
    if args.quick:
        args.scales, args.sizes, args.batches, args.dtypes = [4], [64], [1], ["fp32", "bf16"]
        args.train_size, args.train_batch, args.gpu_batch = 32, 2, 8
        args.repeats = min(args.repeats, 5)
    else:
        args.scales, args.sizes, args.batches, args.dtypes = [2, 4], [64, 256], [1, 8], ["fp32", "bf16"]
        args.train_size, args.train_batch, args.gpu_batch = 64, 4, 8
    for name in ("scales", "sizes", "batches"):
        value = getattr(parser.parse_args(argv), name)
        if value:
            setattr(args, name, [int(v) for v in value.split(",")])
    dtypes = parser.parse_args(argv).dtypes
    if dtypes:
        args.dtypes = [d.strip() for d in dtypes.split(",")]
    print(f"torch {torch.__version__}, {args.threads} threads, mkldnn {torch.backends.mkldnn.is_available()}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}\n")
    limit = section_conv(args) if "conv" in sections else None
    if "ratio" in sections:
        section_ratio(args, limit)
    if "blocks" in sections:
        section_blocks(args)
    if "grid" in sections:
        section_grid(args)
    if "train" in sections:
        section_train(args)
    if "trainmem" in sections:
        section_trainmem(args)
    if "bf16" in sections:
        section_bf16(args)
    if "compile" in sections:
        section_compile(args)
    if "import" in sections:
        section_import(args)
    if "gpu" in sections:
        section_gpu(args)


if __name__ == "__main__":
    main()
