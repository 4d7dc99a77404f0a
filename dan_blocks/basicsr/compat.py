"""Every workaround for BasicSR / torchvision / torch version drift lives here, each with its reason.

Nothing in this module runs on import; `dan_blocks.basicsr` calls `ensure_basicsr_importable()`
once before it touches ``basicsr`` (the core ``import dan_blocks`` never imports BasicSR). Each patch is
applied only when the installed versions need it, and each is covered by ``tests/basicsr/test_compat.py``.

Workarounds
-----------
1. ``torchvision.transforms.functional_tensor`` (removed in torchvision 0.17) is imported by
   ``basicsr/data/degradations.py`` in basicsr 1.4.2, so ``import basicsr`` fails on every current
   torchvision. When the module is missing we register a stand-in exposing ``rgb_to_grayscale``.
2. A CUDA build of torchvision over a CPU-only torch (or any torch/torchvision pair built for each other's
   wrong version) fails deep inside torchvision with ``operator torchvision::nms does not exist``. We turn
   that into an `IncompatibleTorchvisionError` naming both versions and the fix.
3. ``basicsr.data.degradations`` calls ``np.seterr(divide='ignore', invalid='ignore')`` on import, silently
   changing NumPy's global error handling for the whole process. We restore the caller's settings.
4. ``basicsr.archs.arch_util`` imports ``distutils`` (gone from the Python 3.12 stdlib). setuptools provides
   a shim; pyproject pulls setuptools in on Python >= 3.12 and `ensure_basicsr_importable()` says so
   clearly if it is missing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import types
import warnings
from typing import Any

import numpy as np

__all__ = [
    "IncompatibleTorchvisionError",
    "ensure_basicsr_importable",
    "installed_version",
    "torchvision_functional_tensor_shim_needed",
]

_FUNCTIONAL_TENSOR = "torchvision.transforms.functional_tensor"


class IncompatibleTorchvisionError(ImportError):
    """torchvision cannot be imported against the installed torch."""


def installed_version(dist: str) -> str:
    """Version string of an installed distribution, or ``'not installed'``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _import_torchvision() -> types.ModuleType:
    """Import torchvision, translating a torch/torchvision build mismatch into a clear error (workaround 2)."""
    try:
        import torchvision
    except (RuntimeError, ImportError, OSError) as err:
        import torch

        cuda = torch.version.cuda or "none (CPU-only build)"
        raise IncompatibleTorchvisionError(
            f"torchvision {installed_version('torchvision')} cannot be imported with torch {torch.__version__} "
            f"(torch CUDA: {cuda}): {err}. The two must be built for each other; a CUDA torchvision does not "
            "load over a CPU-only torch. Fix: in a fresh virtual environment let pip resolve both together, "
            "e.g. `pip install --force-reinstall torch torchvision` from the same index, or install the "
            "torchvision release that matches your torch (see https://pytorch.org/get-started/previous-versions/)."
        ) from err
    return torchvision


def torchvision_functional_tensor_shim_needed() -> bool:
    """True when ``torchvision.transforms.functional_tensor`` is absent (torchvision >= 0.17)."""
    if _FUNCTIONAL_TENSOR in sys.modules:
        return False
    _import_torchvision()
    return importlib.util.find_spec(_FUNCTIONAL_TENSOR) is None


def _install_functional_tensor_shim() -> None:
    """Register a stand-in ``torchvision.transforms.functional_tensor`` (workaround 1)."""
    try:
        from torchvision.transforms import _functional_tensor as private
    except ImportError:  # pragma: no cover - very old or very new torchvision
        from torchvision.transforms import functional as private
    shim = types.ModuleType(_FUNCTIONAL_TENSOR)
    shim.__doc__ = "Stand-in registered by dan_blocks.compat for basicsr 1.4.2 (removed in torchvision 0.17)."
    shim.rgb_to_grayscale = private.rgb_to_grayscale  # type: ignore[attr-defined]
    sys.modules[_FUNCTIONAL_TENSOR] = shim


def _check_distutils() -> None:
    """Workaround 4: name the missing piece instead of failing inside basicsr."""
    if importlib.util.find_spec("distutils") is None:  # pragma: no cover - only Python >= 3.12 without setuptools
        raise ImportError(
            "basicsr 1.4.2 imports distutils, which Python 3.12 removed from the standard library. "
            "Fix: `pip install setuptools` (it provides the distutils shim)."
        )


def ensure_basicsr_importable() -> types.ModuleType:
    """Import ``basicsr`` on the installed torch/torchvision, patching only what is broken.

    Returns:
        The imported ``basicsr`` module.

    Raises:
        IncompatibleTorchvisionError: torchvision and torch are not builds of each other.
        ImportError: basicsr is missing or its import fails for a reason not handled here.
    """
    if "basicsr" in sys.modules and "basicsr.utils.registry" in sys.modules:
        return sys.modules["basicsr"]
    if torchvision_functional_tensor_shim_needed():
        _install_functional_tensor_shim()
    _check_distutils()
    saved: dict[str, Any] = dict(np.geterr())
    try:
        with warnings.catch_warnings():
            # basicsr 1.4.2 imports ``scipy.ndimage.filters`` (a namespace SciPy deprecated): that one
            # DeprecationWarning is BasicSR's, not the user's, and must not fail `python -W error::DeprecationWarning`
            warnings.filterwarnings(
                "ignore", message=r"Please import `convolve` from the `scipy\.ndimage` namespace",
                category=DeprecationWarning,
            )
            basicsr = importlib.import_module("basicsr")
    finally:
        np.seterr(**saved)  # workaround 3
    return basicsr


# ---------------------------------------------------------------------------------------------------------
# Patches for BasicSR's training / testing pipelines (installed by `patch_basicsr_pipelines`, which the
# ``dan-blocks train`` / ``test`` / ``quickstart`` commands call before running ``basicsr.train.train_pipeline``
# or ``basicsr.test.test_pipeline``). Nothing here runs on ``import dan_blocks``. Tested in
# ``tests/basicsr/test_compat_pipeline.py``, ``tests/basicsr/test_resume*.py`` and
# ``tests/basicsr/test_distributed*.py``.
#
# 5. Resume (``basicsr.train.load_resume_state``): maps the state with ``torch.cuda.current_device()``
#    (fails on CPU-only machines), loads with torch.load's default ``weights_only`` (True from torch 2.6;
#    BasicSR's own states hold ``collections.Counter`` milestones, rejected by torches whose safe unpickler
#    lacks it), scans ``experiments/`` relative to the working directory instead of the run's folder, and
#    fails with a bare unpickling error on a damaged state. Replaced by `load_resume_state`: maps to the
#    model's device, loads with ``weights_only=True`` after allow-listing exactly what BasicSR's states hold
#    (only where the torch needs it), reads ``opt['path']['training_states']``, names damaged files and, with
#    ``--auto_resume``, falls back to the newest intact state.
# 6. Exact resume: BasicSR restarts the interrupted epoch from its first batch with fresh random crops, so a
#    resumed run does not see the data the uninterrupted run would have seen. `ResumablePrefetcher`
#    replaces ``basicsr.train.CPUPrefetcher``: it re-seeds the data RNGs at each epoch start from
#    (manual_seed, epoch, rank) and, after a resume, replays the batches the run had already consumed in that
#    epoch (recorded by DANModel in the training state), so the resumed run continues with the same batches.
# 7. Distributed (``basicsr.utils.dist_util.init_dist``): hard-codes backend nccl and
#    ``torch.cuda.set_device(rank % device_count)`` (ZeroDivisionError without GPUs). Replaced by
#    `init_dist`: nccl + set_device on GPUs, gloo on CPU (or when ``DAN_BLOCKS_DEVICE=cpu``).
# 8. ``BaseModel.model_to_device`` wraps DDP with ``device_ids=[torch.cuda.current_device()]``, which fails on
#    CPU. `model_to_device` omits ``device_ids`` for CPU models and defers to BasicSR otherwise.
# 9. Multi-process speed: BasicSR's ``init_dist`` sets multiprocessing's start method to ``spawn``, so under
#    torchrun every data-loader worker starts a fresh interpreter that imports torch, BasicSR and dan-blocks again
#    and unpickles the dataset: measured on a 2-core CPU with 4 workers, 4 iterations took 105 s instead of 3 s,
#    and with nccl no iteration came in 90 s. (dan-blocks' own CPU path also set ``torch.set_num_threads(cores /
#    world)``, ignoring OMP_NUM_THREADS and oversubscribing the cores the workers use.) `init_dist` keeps the
#    platform's start method (``fork`` on Linux, as a single-process run uses) and leaves the thread count to
#    the caller (``dan-blocks train --threads``, default `dan_blocks.utils.threads.default_threads`).
#    `worker_init_fn` (BasicSR's, plus one torch and OpenCV thread per worker) keeps workers from competing with
#    the training process for the cores.
# 10. ``MessageLogger`` prints ``eta: -1 day, 23:59:57`` on the last iteration (it counts one iteration too
#    few). `MessageLogger` counts the iterations left after the current one, never below zero.
# 11. ``create_train_val_dataloader`` counts ``ceil(samples / batch)`` iterations per epoch, but its data loader
#    drops the last incomplete batch, so an epoch holds ``floor(samples / batch)``: with 3 images and batch 2,
#    ``total_iter: 20`` stopped after 11 iterations (4000 after 2001), saved the result and exited 0.
#    `create_train_val_dataloader` recounts the epochs from the loader's own length.
# ---------------------------------------------------------------------------------------------------------

import os  # noqa: E402

__all__ += [  # plus ResumablePrefetcher and MessageLogger, built on first access (module __getattr__)
    "DEVICE_ENV",
    "create_train_val_dataloader",
    "init_dist",
    "load_resume_state",
    "model_to_device",
    "patch_basicsr_pipelines",
    "resume_notes",
    "resume_state_allowlist_needed",
    "training_progress",
    "worker_init_fn",
]

#: environment variable forcing the CPU path of `init_dist` (the CLI sets it for ``num_gpu: 0``)
DEVICE_ENV = "DAN_BLOCKS_DEVICE"

# what the running training has consumed; written by ResumablePrefetcher, read by DANModel when saving
_PROGRESS: dict[str, int] = {"epoch_batches": 0}
# the run's seed/rank and the batches to replay after a resume; written by load_resume_state
_RUN: dict[str, Any] = {"seed": None, "rank": 0, "skip_epoch": None, "skip_batches": 0, "notes": []}
_ORIGINALS: dict[str, Any] = {}


def training_progress() -> dict[str, int]:
    """Batches consumed in the current epoch (what DANModel stores in its training states)."""
    return dict(_PROGRESS)


def resume_state_allowlist_needed() -> bool:
    """True when this torch's ``weights_only`` unpickler rejects ``collections.Counter`` (BasicSR's milestones)."""
    import collections
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"milestones": collections.Counter({1: 1})}, buffer)
    buffer.seek(0)
    try:
        torch.load(buffer, weights_only=True)
    except Exception:
        return True
    return False


def _allow_resume_state_globals() -> None:
    import collections

    import torch

    if resume_state_allowlist_needed():
        torch.serialization.add_safe_globals([collections.Counter])


def _state_device(opt: dict[str, Any]) -> Any:
    import torch

    if opt.get("num_gpu", 0) != 0 and torch.cuda.is_available() and os.environ.get(DEVICE_ENV) != "cpu":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _resume_network_files(opt: dict[str, Any], resume_iter: int) -> list[str]:
    """The network files BasicSR's ``check_resume`` will load for ``resume_iter`` (same rule: every
    ``network_*`` option not in ``path.ignore_resume_networks``, as ``models/net_<name>_<iter>.pth``)."""
    ignored = opt["path"].get("ignore_resume_networks") or []
    models = opt["path"].get("models") or os.path.join("experiments", opt["name"], "models")
    return [
        os.path.join(models, f"net_{key[len('network_'):]}_{resume_iter}.pth")
        for key in opt
        if key.startswith("network_") and key not in ignored
    ]


def _read_resume_state(path: str, opt: dict[str, Any]) -> dict[str, Any]:
    """A training state and the network files it refers to, read safely; errors name the file at fault.

    Raises:
        FileNotFoundError: the state is missing (a missing network file is named later, when BasicSR loads it).
        CheckpointReadError: the state or an existing network file is damaged (truncated, empty, not PyTorch), or
            the state is not a training state.
    """
    from ..utils import CheckpointReadError, load_file

    state = load_file(path, map_location=_state_device(opt))
    if not isinstance(state, dict) or "iter" not in state or "epoch" not in state:
        raise CheckpointReadError(f"{path} is not a BasicSR training state (expected a dict with 'epoch' and 'iter')")
    for network in _resume_network_files(opt, int(state["iter"])):
        if not os.path.exists(network):  # not damaged but missing: loading it names it (a file deleted by hand)
            continue
        try:
            load_file(network)
        except CheckpointReadError as err:
            raise CheckpointReadError(f"training state {path} needs the network file {network}: {err}") from None
    return state


def resume_notes() -> list[str]:
    """What `load_resume_state` skipped (damaged newest states), to be logged once the logger is set up (BasicSR
    sets it up after resuming); the list is emptied. DANModel logs them when a training starts."""
    notes = list(_RUN.get("notes") or [])
    _RUN["notes"] = []
    return notes


def load_resume_state(opt: dict[str, Any]) -> dict[str, Any] | None:
    """Drop-in for ``basicsr.train.load_resume_state`` (workarounds 5 and 6).

    Same contract: with ``--auto_resume`` picks the newest ``<iter>.state`` of the run, else
    ``path.resume_state``; sets the pretrained-network paths via BasicSR's ``check_resume``; returns the
    state dict or None. Differences: maps tensors to the model's device (CPU when ``num_gpu: 0`` or no CUDA),
    loads with ``weights_only=True`` and records the run's seed and the batches to replay (workaround 6).

    Damaged files (a save killed before dan-blocks wrote atomically, a disk error, a copy cut short): with
    ``--auto_resume`` a newest state that cannot be read, or whose network file cannot, is skipped for the
    newest intact one, with a warning naming the file and why (`resume_notes`); when none is intact the error
    lists them all. An explicit ``path.resume_state`` is never replaced: its error names the file.

    Raises:
        FileNotFoundError: ``path.resume_state`` does not exist.
        CheckpointReadError: ``path.resume_state`` or its network file is damaged, or no state of an
            ``--auto_resume`` run is intact.
    """
    from basicsr.utils import check_resume, scandir

    from ..utils import CheckpointReadError

    _RUN.update(seed=opt.get("manual_seed"), rank=int(opt.get("rank", 0)), skip_epoch=None, skip_batches=0, notes=[])
    _allow_resume_state_globals()
    path, state = None, None
    if opt.get("auto_resume"):
        state_dir = opt["path"].get("training_states") or os.path.join("experiments", opt["name"], "training_states")
        if os.path.isdir(state_dir):
            iters = [int(name[: -len(".state")]) for name in scandir(state_dir, suffix=".state", recursive=False)
                     if name[: -len(".state")].isdigit()]
            problems: list[str] = []
            for resume_iter in sorted(iters, reverse=True):
                candidate = os.path.join(state_dir, f"{resume_iter}.state")
                try:
                    state = _read_resume_state(candidate, opt)
                except (FileNotFoundError, CheckpointReadError) as err:
                    problems.append(str(err))
                    continue
                path = candidate
                break
            if problems and path is None:
                raise CheckpointReadError(
                    f"--auto_resume: no training state in {state_dir} is intact:\n  " + "\n  ".join(problems)
                )
            _RUN["notes"] += [f"--auto_resume: skipped a damaged training state ({problem}); resuming from {path}"
                              for problem in problems]
            if path is not None:
                opt["path"]["resume_state"] = path
    elif opt["path"].get("resume_state"):
        path = opt["path"]["resume_state"]
        if not os.path.isfile(path):
            raise FileNotFoundError(f"resume state {path!r} (path.resume_state) does not exist")
        try:
            state = _read_resume_state(path, opt)
        except (FileNotFoundError, CheckpointReadError) as err:
            raise type(err)(f"path.resume_state: {err}") from None
    if path is None or state is None:
        return None
    check_resume(opt, state["iter"])
    extra = state.get("dan_blocks") or {}
    if "epoch_batches" in extra:
        _RUN.update(skip_epoch=int(state["epoch"]), skip_batches=int(extra["epoch_batches"]))
    return state


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 1_009 + int(rank)) % (2**32)


def _base_prefetcher() -> type:
    from basicsr.data.prefetch_dataloader import CPUPrefetcher

    return CPUPrefetcher


def _make_resumable_prefetcher() -> type:
    base = _base_prefetcher()

    class ResumablePrefetcher(base):  # type: ignore[misc, valid-type]
        """``CPUPrefetcher`` that makes training data a function of (seed, epoch, rank, batch index).

        Workaround 6: at each epoch start the ``random``/NumPy/torch RNGs are re-seeded from
        (``manual_seed``, sampler epoch, rank); after a resume the batches already consumed in the
        interrupted epoch are drawn again and dropped, so the resumed run continues exactly where the
        interrupted one stopped.
        """

        def __init__(self, loader: Any) -> None:
            self.ori_loader = loader
            self.loader: Any = None
            _PROGRESS["epoch_batches"] = 0

        def reset(self) -> None:
            from basicsr.utils import set_random_seed

            sampler = getattr(self.ori_loader, "sampler", None)
            epoch = int(getattr(sampler, "epoch", 0))
            if _RUN["seed"] is not None:
                set_random_seed(_epoch_seed(_RUN["seed"], epoch, _RUN["rank"]))
            self.loader = iter(self.ori_loader)
            _PROGRESS["epoch_batches"] = 0
            if _RUN["skip_epoch"] is not None and _RUN["skip_epoch"] == epoch:
                for _ in range(_RUN["skip_batches"]):
                    if self.next() is None:
                        break
            _RUN["skip_epoch"] = None

        def next(self) -> Any:
            if self.loader is None:
                self.reset()
            try:
                batch = next(self.loader)
            except StopIteration:
                return None
            _PROGRESS["epoch_batches"] += 1
            return batch

    return ResumablePrefetcher


def _make_message_logger() -> type:
    from basicsr.utils.logger import MessageLogger as BaseMessageLogger

    class MessageLogger(BaseMessageLogger):
        """BasicSR's ``MessageLogger`` with a correct ETA (workaround 10): the time of the iterations left
        after the logged one, ``0:00:00`` on the last (BasicSR computes ``max_iters - iter - 1``, negative there)."""

        def __call__(self, log_vars: dict[str, Any]) -> None:
            saved = int(vars(self)["max_iters"])
            self.max_iters = max(saved, int(log_vars.get("iter", 0))) + 1
            try:
                super().__call__(log_vars)
            finally:
                self.max_iters = saved

    return MessageLogger


_LAZY_CLASSES = {"ResumablePrefetcher": _make_resumable_prefetcher, "MessageLogger": _make_message_logger}


def __getattr__(name: str) -> Any:  # these subclass basicsr classes: built on first use
    if name in _LAZY_CLASSES:
        cls = _LAZY_CLASSES[name]()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _use_cpu_backend() -> bool:
    import torch

    return os.environ.get(DEVICE_ENV) == "cpu" or not torch.cuda.is_available() or torch.cuda.device_count() == 0


def init_dist(launcher: str, backend: str | None = None, **kwargs: Any) -> None:
    """Drop-in for ``basicsr.utils.dist_util.init_dist`` choosing the backend from the device (workaround 7).

    GPUs: nccl and ``cuda.set_device(LOCAL_RANK)`` as BasicSR does. CPU (no CUDA, or ``DAN_BLOCKS_DEVICE=cpu``):
    gloo, no ``set_device``. An explicit ``backend`` (``dist_params.backend``) wins.
    """
    import torch.distributed as dist

    _keep_fast_start_method()
    if not _use_cpu_backend():
        _ORIGINALS["init_dist"](launcher, backend=backend or "nccl", **kwargs)
        return
    if launcher != "pytorch":
        raise ValueError(f"launcher {launcher!r}: only 'pytorch' (torchrun) is supported on CPU")
    kwargs.pop("port", None)
    dist.init_process_group(backend=backend or "gloo", **kwargs)


def _keep_fast_start_method() -> None:
    """Workaround 9: fix the start method to the platform's default (``fork`` on Linux) before BasicSR's
    ``init_dist`` would choose ``spawn``; a start method chosen earlier (by the user) is kept."""
    import torch.multiprocessing as mp

    if mp.get_start_method(allow_none=True) is None:
        mp.get_start_method()  # without allow_none, this fixes the default context's method (fork on Linux)


def worker_init_fn(worker_id: int, num_workers: int, rank: int, seed: int) -> None:
    """BasicSR's data-loader ``worker_init_fn`` (per-worker NumPy / ``random`` seeds) plus one torch and one
    OpenCV thread per worker (workaround 9): the workers share the cores with the training process."""
    import torch

    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - BasicSR needs OpenCV
        pass
    _ORIGINALS["worker_init_fn"](worker_id, num_workers=num_workers, rank=rank, seed=seed)


def model_to_device(self: Any, net: Any) -> Any:
    """Drop-in for ``BaseModel.model_to_device``: DDP without ``device_ids`` on CPU (workaround 8)."""
    from torch.nn.parallel import DistributedDataParallel

    if self.opt.get("dist") and self.device.type == "cpu":
        net = net.to(self.device)
        return DistributedDataParallel(net, find_unused_parameters=self.opt.get("find_unused_parameters", False))
    return _ORIGINALS["model_to_device"](self, net)


def create_train_val_dataloader(opt: dict[str, Any], logger: Any) -> tuple[Any, ...]:
    """BasicSR's ``create_train_val_dataloader`` with the epoch count taken from the training loader's length
    (workaround 11): it drops the last incomplete batch, which BasicSR's ``ceil`` count does not, so a training
    stopped before ``total_iter`` without a word."""
    import math

    train_loader, sampler, val_loaders, total_epochs, total_iters = _ORIGINALS["create_train_val_dataloader"](
        opt, logger
    )
    if train_loader is not None:
        per_epoch = len(train_loader)
        if per_epoch > 0 and math.ceil(total_iters / per_epoch) != total_epochs:
            total_epochs = math.ceil(total_iters / per_epoch)
            logger.info(f"Iterations per epoch: {per_epoch} (the last incomplete batch is dropped); total epochs: "
                        f"{total_epochs}.")
    return train_loader, sampler, val_loaders, total_epochs, total_iters


def patch_basicsr_pipelines() -> None:
    """Install workarounds 5-11 into BasicSR (idempotent). Call before ``train_pipeline``/``test_pipeline``."""
    ensure_basicsr_importable()
    import basicsr.data as data
    import basicsr.models.base_model as base_model
    import basicsr.train as train
    import basicsr.utils.dist_util as dist_util
    import basicsr.utils.options as options

    if "init_dist" not in _ORIGINALS:
        _ORIGINALS["init_dist"] = dist_util.init_dist
        _ORIGINALS["model_to_device"] = base_model.BaseModel.model_to_device
        _ORIGINALS["load_resume_state"] = train.load_resume_state
        _ORIGINALS["CPUPrefetcher"] = train.CPUPrefetcher
        _ORIGINALS["worker_init_fn"] = data.worker_init_fn
        _ORIGINALS["MessageLogger"] = train.MessageLogger
        _ORIGINALS["create_train_val_dataloader"] = train.create_train_val_dataloader
    options.init_dist = init_dist
    dist_util.init_dist = init_dist
    base_model.BaseModel.model_to_device = model_to_device
    train.load_resume_state = load_resume_state
    train.CPUPrefetcher = globals().get("ResumablePrefetcher") or __getattr__("ResumablePrefetcher")
    train.MessageLogger = globals().get("MessageLogger") or __getattr__("MessageLogger")
    train.create_train_val_dataloader = create_train_val_dataloader
    data.worker_init_fn = worker_init_fn
