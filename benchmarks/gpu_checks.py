"""End-to-end GPU checks of dan-blocks that a benchmark table does not cover; prints one JSON line per check.

Run on a CUDA machine from the repository root (BasicSR importable):
``python benchmarks/gpu_checks.py [--out DIR]``.

* ``torchrun``: ``torchrun --nproc_per_node 1 -m dan_blocks train --launcher pytorch`` (nccl) with 4 data-loader
  workers and bf16 AMP from the option keys (``use_amp``, ``amp_bf16``, ``use_channels_last``) against the same
  options in one plain process: both finish, and the iterations per second compared;
* ``sr``: ``dan-blocks sr --device cuda --tile 32`` of a DANv2 with ``est_input_norm`` against the untiled run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_cli_train_support import tiny_train_options, write_yaml  # noqa: E402


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _train_seconds(folder: Path) -> float:
    log = next(folder.glob("train_*.log")).read_text()
    found = re.search(r"End of training\. Time consumed: (\d+):(\d\d):(\d\d)", log)
    return float("nan") if found is None else int(found[1]) * 3600 + int(found[2]) * 60 + int(found[3])


def torchrun_check(work: Path, iters: int) -> dict:
    rows = {}
    for mode in ("single", "torchrun"):
        opt = tiny_train_options(f"gpu_{mode}", total_iter=iters, save_freq=iters, enlarge=64)
        opt.update({"num_gpu": 1, "use_amp": True, "amp_bf16": True, "use_channels_last": True})
        opt["datasets"]["train"].update({"num_worker_per_gpu": 4, "batch_size_per_gpu": 16, "gt_size": 64})
        opt["logger"]["print_freq"] = max(1, iters // 4)
        yml = write_yaml(work / f"{mode}.yml", opt)
        cmd = [sys.executable, "-m", "dan_blocks", "train", "--opt", yml]
        if mode == "torchrun":
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port",
                   str(_port()), "-m", "dan_blocks", "train", "--opt", yml, "--launcher", "pytorch"]
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=240)
        rows[mode] = {"rc": proc.returncode, "wall_s": round(time.monotonic() - start, 1),
                      "train_s": _train_seconds(work / "experiments" / f"gpu_{mode}") if proc.returncode == 0 else None,
                      "tail": (proc.stdout + proc.stderr)[-600:] if proc.returncode else ""}
    return {"check": "torchrun nccl, 4 workers, bf16 AMP", "iters": iters, **rows}


def sr_check(work: Path) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    import dan_blocks
    from dan_blocks.formats import save_model

    torch.manual_seed(0)
    model = dan_blocks.DANv2(4, est_input_norm=True, residual="add", nb=2, ng=1, est_nb=1)
    save_model(model, work / "m.pth")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(work / "in.png")
    outs = {}
    for name, extra in (("whole", ["--tile", "0"]), ("tiled", ["--tile", "32"])):
        cmd = [sys.executable, "-m", "dan_blocks", "sr", "-m", str(work / "m.pth"), str(work / "in.png"),
               "-o", str(work / name), "--device", "cuda", "--precision", "fp32", "--no-kernels", *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if proc.returncode:
            return {"check": "sr --device cuda --tile", "rc": proc.returncode, "tail": proc.stderr[-800:]}
        outs[name] = np.asarray(Image.open(next((work / name).glob("*.png"))), dtype=np.int16)
    diff = int(np.abs(outs["whole"] - outs["tiled"]).max())
    return {"check": "sr --device cuda --tile 32 vs untiled", "rc": 0, "max_abs_diff_8bit": diff}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=60)
    parser.add_argument("--checks", default="sr,torchrun")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "4")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for check in args.checks.split(","):
            row = sr_check(work) if check == "sr" else torchrun_check(work, args.iters)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
