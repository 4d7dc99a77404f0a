"""Peak resident memory of ``dan-blocks sr --tile`` on one large image (issue 22: ``--tile`` bounds memory).

Run: ``python benchmarks/bench_sr_memory.py [--size 2000] [--tile 256] [--models v2-wide quickstart v1-wide]
[--threads 2] [--loop 4]``.

For each model, a model file (random weights, seed 0) and one blurred-noise PNG of ``size`` x ``size`` pixels are
written to a temporary folder, and ``python -m dan_blocks sr -m MODEL IMAGE -o OUT --tile N`` runs as a child
process; its maximum resident set size comes from the operating system (``os.wait4``), the same figure as
``/usr/bin/time -v``. Models (x4):

- ``v2-wide``: DAN v2 at the release's widths (restorer 64 channels, estimator 32, tail 64) with one block per
  group: whole-map memory depends on the widths, the depth adds compute (this machine cannot run the release's
  depth at 2000² in reasonable time);
- ``v2-release``: the release's v2 (``dan_v2(4)``), for smaller sizes;
- ``quickstart``: the network of ``basicsr_options/quickstart.yml`` (16 channels, input normalisation);
- ``v1-wide``: DAN v1 at the release's widths, one CRB each (channel attention needs whole maps: see
  docs/inference.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

__all__ = ["main"]


def _model(name: str, loop: int) -> object:
    from dan_blocks.archs import DANv1, DANv2, dan_v2

    if name == "v2-wide":
        return DANv2(4, nb=1, ng=1, est_nb=1, loop=loop)
    if name == "v2-release":
        return dan_v2(4, loop=loop)
    if name == "quickstart":
        return DANv2(4, nf=16, nb=2, ng=1, est_nf=16, est_nb=1, est_tail_nf=32, residual="add", est_input_norm=True,
                     loop=loop)
    if name == "v1-wide":
        return DANv1(4, nb=1, est_nb=1, loop=loop)
    raise SystemExit(f"unknown model {name!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000, help="LR side in pixels (default 2000)")
    parser.add_argument("--tile", type=int, default=256, help="--tile of sr (default 256; 0: untiled)")
    parser.add_argument("--models", nargs="+", default=["v2-wide", "quickstart", "v1-wide"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loop", type=int, default=4, help="DAN iterations (default 4, as released)")
    args = parser.parse_args(argv)

    import cv2
    import numpy as np
    import torch

    from dan_blocks.formats.model_files import save_model

    print(f"# dan-blocks sr --tile {args.tile}, {args.size}² LR x4, loop {args.loop}, {args.threads} threads, "
          f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")
    print(f"{'model':12s} {'max RSS MiB':>12s} {'seconds':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        image = cv2.GaussianBlur((rng.random((args.size, args.size, 3)) * 255).astype(np.uint8), (5, 5), 1.5)
        path = os.path.join(tmp, "in.png")
        cv2.imwrite(path, image)
        for name in args.models:
            torch.manual_seed(0)
            model_path = os.path.join(tmp, f"{name}.pth")
            save_model(_model(name, args.loop), model_path)  # type: ignore[arg-type]
            out = os.path.join(tmp, f"out_{name}")
            command = [sys.executable, "-m", "dan_blocks", "sr", "-m", model_path, path, "-o", out, "--tile",
                       str(args.tile), "--threads", str(args.threads), "--quiet", "--no-kernels"]
            start = time.perf_counter()
            child = subprocess.Popen(command)
            _, status, usage = os.wait4(child.pid, 0)
            seconds = time.perf_counter() - start
            child.returncode = os.waitstatus_to_exitcode(status)
            if child.returncode:
                print(f"{name:12s} failed with exit code {child.returncode}")
                continue
            print(f"{name:12s} {usage.ru_maxrss / 1024:12.0f} {seconds:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
