"""Peak memory and time of tiled vs untiled DAN inference (``dan_blocks.upscale``), release-size v1 / v2 at x4.

Run: ``python benchmarks/bench_tiling.py [--sizes 96 192] [--loop 1] [--device cpu|cuda] [--threads N]``.

Every configuration runs in its own subprocess. On CPU the peak is the process's RSS high-water mark
(``resource.getrusage``), reported as the increase over the same process's RSS after building the model and
the input (torch, weights and the LR image are excluded); on CUDA it is
``torch.cuda.max_memory_allocated``. The time is the best wall time of the calls after the first (the first
also builds the oneDNN / cuDNN plans of every tile shape). Results are printed as a markdown table;
``--json`` writes them too.

``--macs SIZE`` instead counts the convolutions' multiply-adds of the untiled and tiled passes exactly, on
the ``meta`` device (no memory, no time; the blocks' plain path, whose convolutions are all modules): the
ratio is the compute overhead of tiling at that size, e.g. ``--macs 2048``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

__all__ = ["CONFIGS", "count_macs", "main", "run_one"]

#: name -> (version, tile_size, max_halo); tile None = untiled; max_halo "default" or None (whole v2 restorer per
#: tile: no whole LR feature map of the trunk)
CONFIGS: dict[str, tuple[int, int | None, int | str | None]] = {
    "v1 untiled": (1, None, "default"),
    "v1 tile 64": (1, 64, "default"),
    "v1 tile 128": (1, 128, "default"),
    "v2 untiled": (2, None, "default"),
    "v2 tile 64": (2, 64, "default"),
    "v2 tile 128": (2, 128, "default"),
    "v2 tile 256": (2, 256, "default"),
    "v2 tile 256, whole restorer per tile": (2, 256, None),
    "v2 tile 512, whole restorer per tile": (2, 512, None),
}


def _halo(value: int | str | None) -> dict[str, Any]:
    return {} if value == "default" else {"max_halo": value}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_one(
    version: int, size: int, tile: int | None, halo: int | str | None, loop: int, device: str, repeats: int = 2
) -> dict[str, Any]:
    """One measurement in this process (call it in a fresh subprocess)."""
    import torch

    import dan_blocks

    torch.manual_seed(0)
    model = (dan_blocks.dan_v1 if version == 1 else dan_blocks.dan_v2)(4, loop=loop).eval().to(device)
    lr = torch.rand(1, 3, size, size, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = _rss_mib()
    seconds = []
    for _ in range(repeats):  # the first call also builds oneDNN/cuDNN plans for every tile shape
        start = time.perf_counter()
        out = dan_blocks.upscale(model, lr, tile, **_halo(halo))
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        del out
    peak = (torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else _rss_mib()
    outputs = loop * 3 * (4 * size) ** 2 * 4 / 2**20  # the srs list, float32
    return {"peak_mib": peak - base, "seconds": min(seconds[1:] or seconds), "outputs_mib": outputs}


def count_macs(version: int, size: int, tile: int | None, halo: int | str | None, loop: int = 1) -> int:
    """Multiply-adds of every Conv2d in one ``upscale`` call at x4 of the plain model, on the meta device."""
    import torch
    from torch import nn

    import dan_blocks

    total = [0]

    def hook(module: nn.Conv2d, inputs: Any, output: Any) -> None:
        kh, kw = module.kernel_size
        total[0] += output.numel() * (module.in_channels // module.groups) * kh * kw

    model = (dan_blocks.dan_v1 if version == 1 else dan_blocks.dan_v2)(4, loop=loop).eval().to("meta")
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    dan_blocks.upscale(
        model, torch.empty(1, 3, size, size, device="meta"), tile, optimize=False, **_halo(halo)
    )
    for handle in handles:
        handle.remove()
    return total[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 192], help="LR sides (default 96 192)")
    parser.add_argument("--loop", type=int, default=1, help="DAN iterations (default 1; the release uses 4)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=2, help="calls per config; time = best after the first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in each child")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), help="subset of: " + "; ".join(CONFIGS))
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--macs", type=int, default=None, metavar="SIZE", help="count multiply-adds at SIZE")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.macs is not None:
        print("| config | LR size | multiply-adds per iteration (G) | vs untiled |")
        print("|---|---|---|---|")
        base: dict[int, int] = {}
        for name in args.configs:
            version, tile, halo = CONFIGS[name]
            macs = count_macs(version, args.macs, tile, halo)
            if tile is None:
                base.setdefault(version, macs)
            ratio = f"{macs / base[version]:.2f}x" if version in base else "?"
            print(f"| {name} | {args.macs}x{args.macs} | {macs / 1e9:.0f} | {ratio} |", flush=True)
        return 0
    if args.child is not None:
        spec = json.loads(args.child)
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        print(json.dumps(run_one(**spec)))
        return 0
    rows = []
    print("| config | LR size | peak MiB (over baseline) | SR outputs MiB | seconds |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        for name in args.configs:
            version, tile, halo = CONFIGS[name]
            spec = {"version": version, "size": size, "tile": tile, "halo": halo, "loop": args.loop,
                    "device": args.device, "repeats": args.repeats}
            cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"| {name} | {size} | failed: {proc.stderr.strip().splitlines()[-1:]} | | |")
                continue
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append({"config": name, **spec, **result})
            print(f"| {name} | {size}x{size} | {result['peak_mib']:.0f} | {result['outputs_mib']:.0f} | "
                  f"{result['seconds']:.1f} |", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
