"""compat patches of BasicSR's pipelines: resume on CPU / torch >= 2.6, exact data replay, CPU distributed."""

from __future__ import annotations

import collections
import io
import os
import random
import socket

import pytest
import torch

import dan_blocks  # noqa: F401
from dan_blocks.basicsr import compat


def _opt(tmp_path, auto_resume: bool = True) -> dict:
    models, states = tmp_path / "models", tmp_path / "training_states"
    models.mkdir(exist_ok=True)
    states.mkdir(exist_ok=True)
    return {"name": "run", "auto_resume": auto_resume, "num_gpu": 0, "manual_seed": 5, "rank": 0,
            "network_g": {"type": "DANv2"},
            "path": {"models": str(models), "training_states": str(states), "resume_state": None,
                     "pretrain_network_g": None}}


def _basicsr_state(iteration: int) -> dict:
    """A training state as BasicSR's BaseModel.save_training_state builds it (Adam + MultiStepRestartLR)."""
    from basicsr.models.lr_scheduler import MultiStepRestartLR

    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([param], lr=1e-3, betas=(0.9, 0.99))
    scheduler = MultiStepRestartLR(optimizer, milestones=[2, 4], gamma=0.5)
    param.sum().backward()
    optimizer.step()
    scheduler.step()
    return {"epoch": 1, "iter": iteration, "optimizers": [optimizer.state_dict()],
            "schedulers": [scheduler.state_dict()], "dan_blocks": {"epoch_batches": 3}}


def test_resume_state_loads_on_cpu_with_weights_only(tmp_path) -> None:
    opt = _opt(tmp_path)
    for it in (2, 10, 4):
        torch.save(_basicsr_state(it), tmp_path / "training_states" / f"{it}.state")
    (tmp_path / "training_states" / "12.state.tmp123").write_bytes(b"partial")  # an interrupted atomic write
    state = compat.load_resume_state(opt)
    assert state["iter"] == 10  # the newest complete state
    assert isinstance(state["schedulers"][0]["milestones"], collections.Counter)
    assert opt["path"]["pretrain_network_g"] == os.path.join(opt["path"]["models"], "net_g_10.pth")
    exp_avg = state["optimizers"][0]["state"][0]["exp_avg"]
    assert exp_avg.device.type == "cpu"
    torch.testing.assert_close(exp_avg, torch.full((3,), 0.1))  # Adam's first moment after one unit gradient
    assert compat._RUN["skip_epoch"] == 1 and compat._RUN["skip_batches"] == 3


def test_basicsr_original_resume_fails_without_cuda(tmp_path) -> None:
    """Why workaround 5 exists: BasicSR maps the state to torch.cuda.current_device()."""
    if torch.cuda.is_available():
        pytest.skip("the original works where CUDA is available")
    import basicsr.train as train

    opt = _opt(tmp_path, auto_resume=False)
    path = tmp_path / "training_states" / "2.state"
    torch.save(_basicsr_state(2), path)
    opt["path"]["resume_state"] = str(path)
    original = compat._ORIGINALS.get("load_resume_state", train.load_resume_state)
    with pytest.raises((RuntimeError, AssertionError)):
        original(opt)
    assert compat.load_resume_state(opt)["iter"] == 2


def test_counter_allow_list_matches_this_torch() -> None:
    buffer = io.BytesIO()
    torch.save({"m": collections.Counter({1: 2})}, buffer)
    buffer.seek(0)
    try:
        torch.load(buffer, weights_only=True)
        rejected = False
    except Exception:
        rejected = True
    assert compat.resume_state_allowlist_needed() == rejected


def test_missing_resume_state_is_a_clear_error(tmp_path) -> None:
    opt = _opt(tmp_path, auto_resume=False)
    opt["path"]["resume_state"] = str(tmp_path / "nope.state")
    with pytest.raises(FileNotFoundError, match=r"nope\.state"):
        compat.load_resume_state(opt)


class _RandomCrops(torch.utils.data.Dataset):
    """Items drawn with Python's ``random`` (as BasicSR's paired_random_crop / augment do)."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> dict:
        return {"x": torch.tensor([index, random.randint(0, 10**6)])}


def _epoch_batches(prefetcher, sampler, epoch: int) -> list[torch.Tensor]:
    sampler.set_epoch(epoch)
    prefetcher.reset()
    batches = []
    while (batch := prefetcher.next()) is not None:
        batches.append(batch["x"])
    return batches


def test_resumable_prefetcher_replays_the_interrupted_epoch() -> None:
    from basicsr.data.data_sampler import EnlargedSampler

    dataset = _RandomCrops()
    sampler = EnlargedSampler(dataset, 1, 0, ratio=1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, sampler=sampler, drop_last=True)
    compat._RUN.update(seed=5, rank=0, skip_epoch=None, skip_batches=0)
    prefetcher = compat.ResumablePrefetcher(loader)
    uninterrupted = {e: _epoch_batches(prefetcher, sampler, e) for e in (0, 1)}
    assert len(uninterrupted[0]) == 3
    assert not torch.equal(uninterrupted[0][0], uninterrupted[1][0])
    random.seed(12345)  # a resumed process starts from some other RNG state
    compat._RUN.update(skip_epoch=1, skip_batches=1)  # interrupted after the first batch of epoch 1
    resumed = compat.ResumablePrefetcher(loader)
    sampler.set_epoch(1)
    resumed.reset()
    rest = [resumed.next()["x"], resumed.next()["x"]]
    assert resumed.next() is None
    for got, want in zip(rest, uninterrupted[1][1:], strict=True):
        assert torch.equal(got, want)
    assert compat.training_progress()["epoch_batches"] == 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cpu_init_dist_uses_gloo_and_ddp_has_no_device_ids(monkeypatch) -> None:
    import torch.distributed as dist
    from basicsr.models.base_model import BaseModel

    compat.patch_basicsr_pipelines()
    monkeypatch.setenv(compat.DEVICE_ENV, "cpu")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    threads = torch.get_num_threads()
    from basicsr.utils import options

    options.init_dist("pytorch")  # what parse_options calls for --launcher pytorch
    try:
        assert dist.get_backend() == "gloo"
        model = BaseModel({"num_gpu": 0, "is_train": False, "dist": True})
        ddp = model.model_to_device(torch.nn.Linear(2, 2))
        assert isinstance(ddp, torch.nn.parallel.DistributedDataParallel) and ddp.device_ids is None
    finally:
        dist.destroy_process_group()
        torch.set_num_threads(threads)


def test_patch_is_idempotent_and_keeps_the_originals() -> None:
    import basicsr.train as train
    import basicsr.utils.dist_util as dist_util

    compat.patch_basicsr_pipelines()
    compat.patch_basicsr_pipelines()
    assert train.load_resume_state is compat.load_resume_state
    assert dist_util.init_dist is compat.init_dist
    assert compat._ORIGINALS["init_dist"] is not compat.init_dist
    assert compat._ORIGINALS["load_resume_state"] is not compat.load_resume_state
    assert issubclass(train.CPUPrefetcher, compat._ORIGINALS["CPUPrefetcher"])
