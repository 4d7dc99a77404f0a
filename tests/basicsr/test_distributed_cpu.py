"""Two CPU processes (torchrun, gloo) train through ``dan-blocks train --launcher pytorch`` in lock-step."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import torch
from test_cli_train_support import tiny_train_options, write_yaml

# what ``python -m dan_blocks`` runs (dan_blocks/__main__.py -> cli.main.main), plus a hook that makes every
# rank write its own weights and batch at each checkpoint (BasicSR saves on rank 0 only)
ENTRY = textwrap.dedent(
    """
    import os, sys
    import torch
    import dan_blocks.basicsr
    from basicsr.utils.dist_util import get_dist_info
    from dan_blocks.basicsr import DANModel

    _save = DANModel.save

    def save(self, epoch, current_iter):
        _save(self, epoch, current_iter)
        rank, world = get_dist_info()
        net = self.get_bare_model(self.net_g)
        torch.save({"params": net.state_dict(), "lq": self.lq.cpu(), "world": world,
                    "backend": torch.distributed.get_backend(), "ddp": type(self.net_g).__name__,
                    "device_ids": getattr(self.net_g, "device_ids", "n/a")},
                   os.path.join(os.environ["RANK_DUMPS"], f"rank{rank}_{current_iter}.pth"))

    DANModel.save = save
    from dan_blocks.cli.main import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_cpu_ranks_hold_identical_weights(tmp_path) -> None:
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (tmp_path / "entry.py").write_text(ENTRY)
    opt = tiny_train_options("ddp", total_iter=4, save_freq=2, enlarge=2)
    yml = write_yaml(tmp_path / "ddp.yml", opt)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RANK_DUMPS": str(dumps)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "entry.py", "train", "-opt", yml, "--launcher", "pytorch"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    ranks = [torch.load(dumps / f"rank{r}_4.pth", weights_only=True) for r in (0, 1)]
    for dump in ranks:
        assert dump["world"] == 2 and dump["backend"] == "gloo"
        assert dump["ddp"] == "DistributedDataParallel" and dump["device_ids"] is None
    assert not torch.equal(ranks[0]["lq"], ranks[1]["lq"])  # each rank trains on its own batch ...
    for name, value in ranks[0]["params"].items():  # ... yet DDP keeps the replicas identical
        assert torch.equal(value, ranks[1]["params"][name]), name
    earlier = torch.load(dumps / "rank0_2.pth", weights_only=True)["params"]
    assert any(not torch.equal(earlier[n], v) for n, v in ranks[0]["params"].items())  # and they do train
    saved = torch.load(tmp_path / "experiments" / "ddp" / "models" / "net_g_4.pth", weights_only=True)["params"]
    for name, value in saved.items():
        assert torch.equal(value, ranks[0]["params"][name])

