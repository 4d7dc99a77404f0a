"""torchrun with data-loader workers keeps its speed: no ``spawn`` start method, workers on one thread, the
training process on the threads it was given (issue 20: 4 iterations took 105 s under torchrun, 3 s alone)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
from test_cli_train_support import tiny_train_options, write_yaml


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_gloo_processes_with_workers_train_without_stalling(tmp_path) -> None:
    opt = tiny_train_options("workers", total_iter=8, save_freq=8, enlarge=16)
    opt["datasets"]["train"]["num_worker_per_gpu"] = 2
    opt["logger"]["print_freq"] = 4
    yml = write_yaml(tmp_path / "w.yml", opt)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "dan_blocks", "train", "--opt", yml, "--launcher", "pytorch"]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert (tmp_path / "experiments" / "workers" / "models" / "net_g_8.pth").is_file()
    log = next((tmp_path / "experiments" / "workers").glob("train_workers_*.log")).read_text()
    assert "World size (gpu number): 2" in log
    consumed = re.search(r"End of training\. Time consumed: (\d+):(\d\d):(\d\d)", log)
    assert consumed is not None
    training_s = int(consumed.group(1)) * 3600 + int(consumed.group(2)) * 60 + int(consumed.group(3))
    # 8 iterations of a tiny net: seconds; with spawned workers and oversubscribed threads it took minutes
    assert training_s < 30, f"8 iterations took {training_s} s"
    assert elapsed < 180


def test_start_method_and_worker_threads(tmp_path) -> None:
    code = (
        "import numpy as np, torch, torch.multiprocessing as mp\n"
        "from dan_blocks.basicsr import compat\n"
        "compat.patch_basicsr_pipelines()\n"
        "import basicsr.data as data\n"
        "compat._keep_fast_start_method()\n"
        "torch.set_num_threads(2)\n"
        "data.worker_init_fn(3, num_workers=4, rank=1, seed=10)\n"
        "print(mp.get_start_method(), torch.get_num_threads(), np.random.randint(1 << 30))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    method, threads, draw = out.stdout.split()
    if sys.platform.startswith("linux"):
        assert method != "spawn"  # the platform's default (fork; forkserver from Python 3.14), not BasicSR's
    assert threads == "1"
    np.random.seed(4 * 1 + 3 + 10)  # BasicSR's worker seed: num_workers * rank + worker_id + seed
    assert int(draw) == np.random.randint(1 << 30)
