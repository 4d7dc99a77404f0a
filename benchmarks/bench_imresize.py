"""Batched ``dan_blocks.degradations.imresize`` vs BasicSR's per-image MATLAB imresize.

Run: ``python benchmarks/bench_imresize.py [--batch 16 --size 256 --scale 4 --repeats 5 --threads N]``.
Prints the best-of-N (timeit's convention: least disturbed by other load) and median time of each and the
speed-up ratio of the best times (goal: >= 20x on 16x3x256x256, CPU).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import dan_blocks  # noqa: F401  (makes basicsr importable)
from dan_blocks.degradations import imresize

__all__ = ["main", "timings"]


def timings(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(best, median) wall time of ``repeats`` calls after one warm-up call."""
    fn()  # warm-up (builds and caches the weight matrices for the batched version)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from basicsr.utils.matlab_functions import imresize as basicsr_imresize

    img = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    s = 1.0 / args.scale
    ours = timings(lambda: imresize(img, s), args.repeats)
    ref = timings(lambda: [basicsr_imresize(img[i], s) for i in range(args.batch)], args.repeats)
    diff = (
        (imresize(img, s) - torch.stack([basicsr_imresize(img[i], s) for i in range(args.batch)])).abs().max()
    )
    print(
        f"input {tuple(img.shape)} float32 CPU, scale 1/{args.scale}, torch threads {torch.get_num_threads()}"
    )
    print(f"basicsr per image : best {ref[0] * 1e3:8.2f} ms   median {ref[1] * 1e3:8.2f} ms")
    print(f"dan_blocks batched: best {ours[0] * 1e3:8.2f} ms   median {ours[1] * 1e3:8.2f} ms")
    print(
        f"speed-up (best)   : {ref[0] / ours[0]:8.1f}x   "
        f"(median {ref[1] / ours[1]:.1f}x; max abs diff {diff.item():.2e})"
    )


if __name__ == "__main__":
    main()
