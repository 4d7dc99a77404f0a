"""DANModel: BasicSR's SRModel for any network built on `dan_blocks.archs.DAN`.

Training batches carry only ``gt``; the model degrades them on its own device (``degradation:`` option
block, `dan_blocks.degradations.build_degradation()`) with a generator seeded from
(``manual_seed``, iteration, rank), so runs are reproducible and resumable. Loss:

$$
L = w_{pix} L_{pix}(SR_T, HR) + w_{ker} L_{ker}(\\hat k_T, k)
$$

(v1: the kernel term compares codes with the PCA-encoded ground truth; v2: full kernels), optionally
summed over every iteration t with ``train.iteration_weights`` (off by default, as in the release).

Mixed precision and memory format (top-level keys, as traiNNer-redux spells them): ``use_amp`` runs the network's
forward under ``torch.autocast`` (training, validation and ``dan-blocks test``), in bf16 with ``amp_bf16: true``,
else in fp16 with a ``GradScaler``; ``use_channels_last`` (with ``use_amp``) keeps images and weights
channels-last; ``use_compile`` (``compile_mode``) trains a ``torch.compile``d network. The losses (pixel and
kernel), the PCA encoding of the ground-truth kernels and the network's kernel-to-code encoding run in fp32;
weights, optimiser states and checkpoints stay fp32. A loss that is NaN or infinite stops the training with an
error naming the iteration, before anything is saved.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from basicsr.metrics import calculate_metric
from basicsr.metrics.psnr_ssim import calculate_psnr
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.dist_util import get_dist_info, master_only
from torch import Tensor

from ..formats.model_files import file_metadata, model_file_payload
from ..inference.loading import dan_state_dict, estimator_state_dict
from ..metrics import as_kernel_map, kernel_error, kernel_picture, kernel_psnr, mean_kernel
from ..utils import CheckpointMismatchError, atomic_save, atomic_write_text, check_keys, load_file, load_state_strict
from ..utils.files import remove_stale_temp_files
from . import compat
from .options import TRAIN_KEYS, VAL_KEYS, check_path_block, describe_nonfinite, nonfinite_tensors

__all__ = ["DANModel", "TrainingDivergedError"]

#: smallest LR side DANModel accepts: the Y-PSNR crop of ``scale`` pixels per border must leave pixels
MIN_LR_SIZE = 3


#: per-iteration kernel metrics of validation / ``dan-blocks test``: L1 (``kernel_error``) and MANet's kernel PSNR,
#: each as is (centre taps aligned) and after aligning the centres of mass (``align=True``)
KERNEL_METRICS = (
    "kernel_error_per_iteration",
    "kernel_error_aligned_per_iteration",
    "kernel_psnr_per_iteration",
    "kernel_psnr_aligned_per_iteration",
)


def _kernel_metrics(kernels: list[Tensor], truth: Tensor) -> dict[str, list[float]]:
    """`KERNEL_METRICS` of the first sample, per iteration."""
    out: dict[str, list[float]] = {key: [] for key in KERNEL_METRICS}
    for kernel in kernels:
        est, ref = kernel[:1].float(), truth[:1].float()
        for key, fn, align in (
            ("kernel_error_per_iteration", kernel_error, False),
            ("kernel_error_aligned_per_iteration", kernel_error, True),
            ("kernel_psnr_per_iteration", kernel_psnr, False),
            ("kernel_psnr_aligned_per_iteration", kernel_psnr, True),
        ):
            out[key].append(float(fn(est, ref, align=align)[0]))
    return out


class TrainingDivergedError(FloatingPointError):
    """A training loss became NaN or infinite."""


class DANModel(SRModel):
    """SRModel with on-the-fly degradation, a kernel loss, an estimator learning rate and DAN validation.

    Options (besides BasicSR's): ``degradation`` (training only), ``train.kernel_opt`` (a BasicSR loss, e.g.
    ``{type: L1Loss, loss_weight: 1.0}``), ``train.lr_E`` (estimator learning rate; default ``optim_g.lr``),
    ``train.iteration_weights`` (one weight per DAN iteration to supervise all of them; default off),
    ``val.kernel_zoom`` (kernel picture enlargement, default 8).
    """

    def __init__(self, opt: dict[str, Any]) -> None:
        check_path_block(opt)
        check_keys(opt.get("val"), VAL_KEYS, "val (DANModel)")
        self.degradation = None
        if opt["is_train"]:
            check_keys(opt.get("train"), TRAIN_KEYS, "train (DANModel)")
            if opt.get("degradation") is None:
                raise ValueError(
                    "DANModel training needs a 'degradation:' option block, e.g. {preset: setting1, scale: 4}"
                )
            from ..degradations import build_degradation

            self.degradation = build_degradation(dict(opt["degradation"]))
        self._current_iter = 0
        self._setup_precision(opt)
        super().__init__(opt)
        net = self.get_bare_model(self.net_g)
        self.scale = int(getattr(net, "scale", opt.get("scale", 1)))
        if self.degradation is not None:
            self._check_degradation(net)
        self._load_pretrained_estimator(net)
        if opt["is_train"]:
            self._start_notes()

    def _start_notes(self) -> None:
        """At the start of a training: log what resuming skipped (`compat.load_resume_state`) and remove the
        temporary files that saves killed midway left in ``models/`` and ``training_states/`` (only those whose
        writing process is gone; rank 0 only)."""
        logger = get_root_logger()
        for note in compat.resume_notes():
            logger.warning(note)
        rank, _ = get_dist_info()
        if rank != 0:
            return
        paths = self.opt.get("path") or {}
        for key in ("models", "training_states"):
            folder = paths.get(key)
            if not folder:
                continue
            # this process is only starting: a file named with its id is another, killed, run's (containers
            # give a restarted program the same id)
            removed = remove_stale_temp_files(folder, include_own=True)
            if removed:
                logger.warning(
                    f"Removed {len(removed)} temporary file(s) left in {folder} by an interrupted save: "
                    + ", ".join(os.path.basename(p) for p in removed)
                )

    # -- set-up -------------------------------------------------------------------------------------
    def _setup_precision(self, opt: dict[str, Any]) -> None:
        """``use_amp`` / ``amp_bf16`` / ``use_channels_last`` / ``use_compile`` (see the module docstring)."""
        self.use_amp = bool(opt.get("use_amp", False))
        self.amp_dtype = torch.bfloat16 if opt.get("amp_bf16") else torch.float16
        cuda = opt.get("num_gpu", 0) != 0 and torch.cuda.is_available() and os.environ.get(compat.DEVICE_ENV) != "cpu"
        if self.use_amp and self.amp_dtype == torch.bfloat16 and cuda and not torch.cuda.is_bf16_supported():
            get_root_logger().warning("amp_bf16: this GPU does not support bf16; using fp16 with a GradScaler")
            self.amp_dtype = torch.float16
        self.memory_format = (torch.channels_last if self.use_amp and opt.get("use_channels_last")
                              else torch.preserve_format)
        self.use_compile = bool(opt.get("use_compile", False))
        self.compile_mode = opt.get("compile_mode") or "default"
        self.scaler: Any = None
        if self.use_amp:
            get_root_logger().info(
                f"Mixed precision: autocast in {'bf16' if self.amp_dtype == torch.bfloat16 else 'fp16'}"
                f"{', channels-last' if self.memory_format == torch.channels_last else ''}; losses, PCA "
                "encoding and weights in fp32."
            )

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The network's precision context: ``torch.autocast`` in the AMP dtype with ``use_amp``, else nothing."""
        if not self.use_amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def model_to_device(self, net: Any) -> Any:
        """BasicSR's (DDP when distributed), after the memory format; ``use_compile`` compiles the network first
        (`get_bare_model` unwraps both)."""
        net = net.to(self.device, memory_format=self.memory_format)
        if self.use_compile and self.opt.get("is_train"):  # validation and test run the bare network
            net = torch.compile(net, mode=None if self.compile_mode == "default" else self.compile_mode)
        return super().model_to_device(net)

    def get_bare_model(self, net: Any) -> Any:
        """BasicSR's (DataParallel / DDP unwrapped), and a ``torch.compile`` wrapper unwrapped too."""
        net = super().get_bare_model(net)
        while hasattr(net, "_orig_mod"):
            net = super().get_bare_model(net._orig_mod)
        return net

    def _check_degradation(self, net: Any) -> None:
        deg_scale = getattr(self.degradation, "scale", self.scale)
        if int(deg_scale) != self.scale:
            raise ValueError(f"degradation scale x{deg_scale} differs from the network's x{self.scale}")
        net_k, deg_k = getattr(net, "kernel_size", None), getattr(self.degradation, "kernel_size", None)
        if net_k is not None and deg_k is not None and int(net_k) != int(deg_k):
            raise ValueError(
                f"degradation kernel size {deg_k} differs from the network's kernel_size {net_k}: "
                "the kernel loss compares them tap by tap (set network_g.kernel_size or degradation.kernel_size)"
            )

    def _load_pretrained_estimator(self, net: Any) -> None:
        """``path.pretrain_network_estimator``: start the estimator from a file (MANet's stage-1 or stage-3 file, a
        DAN checkpoint, an estimator's own file), ``strict_load_estimator`` (default true), ``param_key_estimator``
        (default ``params``). Skipped when resuming (the resumed ``net_g`` holds the trained estimator)."""
        paths = self.opt.get("path") or {}
        source = paths.get("pretrain_network_estimator")
        if not source or paths.get("resume_state"):
            return
        estimator = getattr(net, "estimator", None)
        if not isinstance(estimator, torch.nn.Module):
            raise ValueError(
                f"path.pretrain_network_estimator is set but network_g ({type(net).__name__}) has no estimator"
            )
        state = estimator_state_dict(str(source), paths.get("param_key_estimator", "params"))
        strict = bool(paths.get("strict_load_estimator", True))
        get_root_logger().info(f"Loading the estimator {type(estimator).__name__} from {source} (strict={strict}).")
        if strict:
            load_state_strict(estimator, state, f"path.pretrain_network_estimator {source}")
        else:
            result = estimator.load_state_dict(state, strict=False)
            get_root_logger().warning(
                f"estimator from {source}: missing {result.missing_keys}, unexpected {result.unexpected_keys}"
            )

    def init_training_settings(self) -> None:
        from basicsr.losses import build_loss

        train_opt = self.opt["train"]
        super().init_training_settings()
        kernel_opt = train_opt.get("kernel_opt", {"type": "L1Loss", "loss_weight": 1.0})
        self.cri_kernel = build_loss(dict(kernel_opt)).to(self.device) if kernel_opt else None
        weights = train_opt.get("iteration_weights")
        loop = int(getattr(self.get_bare_model(self.net_g), "loop", 1))
        if weights is not None and len(weights) != loop:
            raise ValueError(f"train.iteration_weights needs one weight per DAN iteration ({loop}), got {weights}")
        self.iteration_weights = [float(w) for w in weights] if weights is not None else None
        if hasattr(self, "net_g_ema"):
            self.net_g_ema.to(memory_format=self.memory_format)
        fp16 = self.use_amp and self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=fp16)

    def setup_optimizers(self) -> None:
        """One Adam with two groups: restorer (and the rest) at ``optim_g.lr``, estimator at ``train.lr_E``."""
        train_opt = self.opt["train"]
        optim_opt = dict(train_opt["optim_g"])
        optim_type = optim_opt.pop("type")
        lr = optim_opt.pop("lr")
        lr_e = float(train_opt.get("lr_E", lr))
        net = self.get_bare_model(self.net_g)
        estimator = getattr(net, "estimator", None)
        est_ids = {id(p) for p in estimator.parameters()} if estimator is not None else set()
        rest: list[torch.nn.Parameter] = []
        est: list[torch.nn.Parameter] = []
        for name, param in net.named_parameters():
            if not param.requires_grad:
                get_root_logger().warning(f"Params {name} will not be optimized.")
                continue
            (est if id(param) in est_ids else rest).append(param)
        groups = [{"params": rest, "lr": float(lr)}]
        if est:
            groups.append({"params": est, "lr": lr_e})
        self.optimizer_g = self.get_optimizer(optim_type, groups, float(lr), **optim_opt)
        self.optimizers.append(self.optimizer_g)

    # -- data ---------------------------------------------------------------------------------------
    def update_learning_rate(self, current_iter: int, warmup_iter: int = -1) -> None:
        self._current_iter = int(current_iter)
        super().update_learning_rate(current_iter, warmup_iter)

    def _generator(self) -> torch.Generator:
        rank, _ = get_dist_info()
        seed = int(self.opt.get("manual_seed") or 0)
        generator = torch.Generator()  # CPU: the same kernels on every device
        generator.manual_seed((seed * 1_000_003 + rank * 7_919 + self._current_iter) % (2**63))
        return generator

    def _check_lr(self, lq: Tensor, what: str) -> None:
        if lq.dim() != 4:
            raise ValueError(f"{what} must be a (B, C, H, W) batch, got shape {tuple(lq.shape)}")
        if min(lq.shape[-2:]) < MIN_LR_SIZE:
            raise ValueError(
                f"{what} of size {lq.shape[-2]}x{lq.shape[-1]} is smaller than DANModel needs: at least "
                f"{MIN_LR_SIZE}x{MIN_LR_SIZE} LR pixels (x{self.scale}: HR at least "
                f"{MIN_LR_SIZE * self.scale}x{MIN_LR_SIZE * self.scale})"
            )

    def _check_gt(self, gt: Tensor) -> None:
        height, width = gt.shape[-2:]
        k = int(getattr(self.degradation, "kernel_size", 1))
        need = max(MIN_LR_SIZE * self.scale, k // 2 + 1)
        if height % self.scale or width % self.scale or min(height, width) < need:
            raise ValueError(
                f"training HR patch {height}x{width} is unusable at x{self.scale}: it must be a multiple of "
                f"{self.scale} and at least {need}x{need} (LR >= {MIN_LR_SIZE} px; reflect padding of a {k}x{k} "
                "kernel); set datasets.train.gt_size accordingly"
            )

    def feed_data(self, data: dict[str, Any]) -> None:
        """Validation/test batches: ``lq`` (+ ``gt``, ``kernel``). Training batches: ``gt`` only, degraded here."""
        for name in ("gt", "gt_kernel"):
            if hasattr(self, name):
                delattr(self, name)
        if "lq" in data:
            self.lq = data["lq"].to(self.device, memory_format=self.memory_format)
            self._check_lr(self.lq, "LR input 'lq'")
            if "gt" in data:
                self.gt = data["gt"].to(self.device)
            if data.get("kernel") is not None:
                self.gt_kernel = data["kernel"].to(self.device).float()
            return
        if "gt" not in data:
            raise KeyError(f"DANModel batches need 'lq' or 'gt'; got keys {sorted(data)}")
        if self.degradation is None:
            raise ValueError("a batch without 'lq' needs the training 'degradation:' block to make its LR")
        gt = data["gt"].to(self.device)
        self._check_gt(gt)
        with torch.no_grad():
            lq, kernels = self.degradation(gt, self._generator())
        self.lq, self.gt, self.gt_kernel = lq.contiguous(memory_format=self.memory_format), gt, kernels.float()

    # -- training -----------------------------------------------------------------------------------
    def _kernel_term(self, out: Any, index: int) -> Tensor | None:
        if self.cri_kernel is None or not hasattr(self, "gt_kernel"):
            return None
        net = self.get_bare_model(self.net_g)
        if net.output_kind == "kernel":  # DAN v2-style: compare kernels; v1-style code estimators: codes
            kernel = out.kernels[index].float()
            target = self.gt_kernel.to(kernel)
            if kernel.dim() == 3 and target.dim() == 3:
                return self.cri_kernel(kernel, target)
            # per-pixel estimate and/or per-pixel ground truth (B, k*k, h, w): compare pixel by pixel
            size = kernel.shape[-1] if kernel.dim() == 3 else math.isqrt(kernel.shape[1])
            est, ref = as_kernel_map(kernel, size), as_kernel_map(target, size)
            shape = torch.broadcast_shapes(est.shape, ref.shape)
            return self.cri_kernel(est.expand(shape), ref.expand(shape))
        code = out.codes[index].float()
        pca = net.pca
        target = pca.encode(self.gt_kernel.float())  # (B, C) or per pixel (B, C, h, w); fp32 (outside autocast)
        if code.dim() == 2 and target.dim() == 2:
            return self.cri_kernel(code, target)
        code_map = code[:, :, None, None] if code.dim() == 2 else code
        target_map = target[:, :, None, None] if target.dim() == 2 else target
        shape = torch.broadcast_shapes(code_map.shape, target_map.shape)
        return self.cri_kernel(code_map.expand(shape), target_map.expand(shape))

    def optimize_parameters(self, current_iter: int) -> None:
        self.optimizer_g.zero_grad()
        with self.autocast():
            out = self.net_g(self.lq)
        self.output = out.sr
        if self.gt.shape != self.output.shape:
            raise ValueError(f"SR {tuple(self.output.shape)} and HR {tuple(self.gt.shape)} differ in shape")
        loss_dict: OrderedDict[str, Tensor] = OrderedDict()
        last = len(out.srs) - 1
        weights = self.iteration_weights or [0.0] * last + [1.0]
        l_total: Tensor | float = 0.0
        for index, weight in enumerate(weights):
            if weight == 0:
                continue
            tag = "" if self.iteration_weights is None else f"_{index + 1}"
            if self.cri_pix is not None:
                l_pix = self.cri_pix(out.srs[index].float(), self.gt)
                l_total = l_total + weight * l_pix
                loss_dict[f"l_pix{tag}"] = l_pix
            l_ker = self._kernel_term(out, index)
            if l_ker is not None:
                l_total = l_total + weight * l_ker
                loss_dict[f"l_ker{tag}"] = l_ker
        if not isinstance(l_total, Tensor):
            raise ValueError("DANModel has no loss to train with: set train.pixel_opt and/or train.kernel_opt")
        self._check_finite_loss(l_total, loss_dict, current_iter)
        scaler = self.scaler
        if scaler is not None and scaler.is_enabled():
            scaler.scale(l_total).backward()
            scaler.step(self.optimizer_g)
            scaler.update()
        else:
            l_total.backward()
            self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _check_finite_loss(self, total: Any, losses: Mapping[str, Tensor], current_iter: int) -> None:
        """Raise `TrainingDivergedError` naming the iteration and the losses when the total loss is NaN or
        infinite (on every rank at once when distributed, so that none waits for the others forever)."""
        if not isinstance(total, Tensor):
            return
        bad = (~torch.isfinite(total.detach())).float().reshape(1)
        _, world = get_dist_info()
        if world > 1:
            torch.distributed.all_reduce(bad)
        if float(bad.item()) == 0:
            return
        values = ", ".join(f"{name}: {float(value.detach()):.4g}" for name, value in losses.items())
        raise TrainingDivergedError(
            f"training diverged at iteration {current_iter}: the loss is not finite ({values or 'no loss terms'})"
            f" on {'this process' if world == 1 else 'at least one process'}; nothing of this iteration "
            "was saved (the last checkpoint, if any, is intact). Lower the learning rate, check the data and the "
            "pretrained weights" + (", or turn off fp16 (amp_bf16: true or use_amp: false)"
                                    if self.use_amp and self.amp_dtype == torch.float16 else "")
        )

    # -- inference ----------------------------------------------------------------------------------
    def test(self) -> None:
        """Runs the EMA network when there is one, else the bare network; ``self.output`` is the final SR."""
        net = self.net_g_ema if hasattr(self, "net_g_ema") else self.get_bare_model(self.net_g)
        was_training = net.training
        net.eval()
        with torch.no_grad(), self.autocast():
            out = net(self.lq)
        if was_training:
            net.train()
        self.output = out.sr.float()
        self.srs = [sr.float() for sr in out.srs]
        self.kernels = [kernel.float() for kernel in self._estimated_kernels(net, out)]

    @staticmethod
    def _estimated_kernels(net: Any, out: Any) -> list[Tensor]:
        """Every iteration's kernels: estimated, or reconstructed from v1's codes (see `DANOutput.kernels`)."""
        return list(out.kernels)

    # -- validation ---------------------------------------------------------------------------------
    def nondist_validation(self, dataloader: Any, current_iter: Any, tb_logger: Any, save_img: bool) -> None:
        """BasicSR's validation plus per-iteration Y-PSNR, kernel error and kernel pictures.

        Writes ``<path.log>/metrics_<dataset>_<iter>.json`` (atomically) with the averages.
        """
        dataset_name = dataloader.dataset.opt["name"]
        val_opt = self.opt["val"]
        metrics_opt = val_opt.get("metrics") or {}
        if metrics_opt:
            self._initialize_best_metric_results(dataset_name)
        self.metric_results = {name: 0.0 for name in metrics_opt}
        psnr_sums: list[float] = []
        kernel_sums: dict[str, list[float]] = {key: [] for key in KERNEL_METRICS}
        kernel_count = 0
        count = 0
        per_image = []
        for val_data in dataloader:
            img_name = os.path.splitext(os.path.basename(val_data["lq_path"][0]))[0]
            self.feed_data(val_data)
            self.test()
            sr_img = tensor2img([self.output.detach().cpu()])
            record: dict[str, Any] = {"name": img_name}
            if hasattr(self, "gt"):
                gt_img = tensor2img([self.gt.detach().cpu()])
                for name, opt_ in metrics_opt.items():
                    value = float(calculate_metric({"img": sr_img, "img2": gt_img}, opt_))
                    self.metric_results[name] += value
                    record[name] = value
                psnrs = [float(calculate_psnr(tensor2img([sr.detach().cpu()]), gt_img, self.scale,
                                              test_y_channel=True)) for sr in self.srs]
                psnr_sums = [a + b for a, b in zip(psnr_sums, psnrs, strict=True)] if psnr_sums else psnrs
                record["psnr_y_per_iteration"] = psnrs
            gt_kernel = getattr(self, "gt_kernel", None)
            if gt_kernel is not None:
                for key, values in _kernel_metrics(self.kernels, gt_kernel).items():
                    sums = kernel_sums[key]
                    kernel_sums[key] = [a + b for a, b in zip(sums, values, strict=True)] if sums else values
                    record[key] = values
                kernel_count += 1
            if save_img:
                self._save_pictures(sr_img, img_name, dataset_name, current_iter, gt_kernel)
            per_image.append(record)
            count += 1
            del self.lq, self.output
        if count == 0:
            raise ValueError(f"validation dataset {dataset_name!r} is empty")
        for name in self.metric_results:
            self.metric_results[name] /= count
            self._update_best_metric_result(dataset_name, name, self.metric_results[name], current_iter)
        self.iteration_results = {
            "psnr_y_per_iteration": [v / count for v in psnr_sums],
            **{key: [v / kernel_count for v in sums] if kernel_count else [] for key, sums in kernel_sums.items()},
        }
        self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
        summary = {"dataset": dataset_name, "iter": current_iter, "images": count, **self.metric_results,
                   **self.iteration_results, "per_image": per_image}
        os.makedirs(self.opt["path"]["log"], exist_ok=True)
        atomic_write_text(
            os.path.join(self.opt["path"]["log"], f"metrics_{dataset_name}_{current_iter}.json"),
            json.dumps(summary, indent=2),
        )

    def _log_validation_metric_values(self, current_iter: Any, dataset_name: str, tb_logger: Any) -> None:
        if self.metric_results:
            super()._log_validation_metric_values(current_iter, dataset_name, tb_logger)
        results = getattr(self, "iteration_results", {})
        lines = [f"Validation {dataset_name}, per DAN iteration:"]
        for key in ("psnr_y_per_iteration", *KERNEL_METRICS):
            values = results.get(key) or []
            if values:
                lines.append(f"\t # {key}: " + ", ".join(f"{v:.4f}" for v in values))
            if tb_logger and isinstance(current_iter, int):
                for index, value in enumerate(values):
                    tag = key.replace("_per_iteration", "")
                    tb_logger.add_scalar(f"metrics/{dataset_name}/{tag}_iter{index + 1}", value, current_iter)
        get_root_logger().info("\n".join(lines))

    def _save_pictures(
        self, sr_img: Any, img_name: str, dataset_name: str, current_iter: Any, gt_kernel: Tensor | None
    ) -> None:
        visual = self.opt["path"]["visualization"]
        if self.opt["is_train"]:
            stem = os.path.join(visual, img_name, f"{img_name}_{current_iter}")
        else:
            suffix = self.opt["val"].get("suffix") or self.opt["name"]
            stem = os.path.join(visual, dataset_name, f"{img_name}_{suffix}")
        imwrite(sr_img, f"{stem}.png")
        estimate = mean_kernel(self.kernels[-1][:1])  # per-pixel kernels: the image-average kernel
        zoom = int(self.opt["val"].get("kernel_zoom", 8))
        reference = mean_kernel(gt_kernel[:1]) if gt_kernel is not None else None
        imwrite(kernel_picture(estimate, reference, zoom=zoom), f"{stem}_kernel.png")

    # -- checkpoints (atomic) -----------------------------------------------------------------------
    @master_only
    def save_network(self, net: Any, net_label: str, current_iter: int, param_key: Any = "params") -> None:
        """BasicSR's save_network written atomically, with the network's options and the dan-blocks version
        (``"dan_blocks"`` entry, see `dan_blocks.archs.save_model`)."""
        label = "latest" if current_iter == -1 else current_iter
        path = os.path.join(self.opt["path"]["models"], f"{net_label}_{label}.pth")
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError("save_network: as many param keys as networks are needed")
        states = {key: self.get_bare_model(net_).state_dict() for net_, key in zip(nets, keys, strict=True)}
        # self-describing: the options that rebuild the network (dan_blocks.load_model reads them; BasicSR
        # itself reads only the params)
        atomic_save(model_file_payload(states, self.opt["network_g"], self.get_bare_model(nets[0])), path)

    def resume_training(self, resume_state: dict[str, Any]) -> None:
        """BasicSR's (optimisers, schedulers), plus the fp16 GradScaler's state."""
        super().resume_training(resume_state)
        scaler_state = (resume_state.get("dan_blocks") or {}).get("grad_scaler")
        if scaler_state and self.scaler is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(scaler_state)

    @master_only
    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """BasicSR's training state plus the batches consumed in the epoch (exact resume), written atomically."""
        if current_iter == -1:
            return
        extra: dict[str, Any] = dict(compat.training_progress())
        if self.scaler is not None and self.scaler.is_enabled():
            extra["grad_scaler"] = self.scaler.state_dict()
        state = {
            "epoch": epoch,
            "iter": current_iter,
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "dan_blocks": extra,
        }
        atomic_save(state, os.path.join(self.opt["path"]["training_states"], f"{current_iter}.state"))

    def _recorded_difference(self, load_path: str, net: Any) -> str:
        """The options a self-describing file records where they differ from this run's ``network_g``."""
        if net is not self.get_bare_model(self.net_g):
            return ""
        meta = file_metadata(load_file(load_path))
        recorded = meta.get("network_g") if isinstance(meta, Mapping) else None
        ours = self.opt.get("network_g") or {}
        if not isinstance(recorded, Mapping):
            return ""
        diff = [f"{k}: file {recorded[k]!r}, network_g {ours[k]!r}" for k in ours
                if k in recorded and recorded[k] != ours[k]]
        if not diff:
            return ""
        return "\n  the file was saved with other options than this run's network_g: " + "; ".join(diff)

    def load_network(self, net: Any, load_path: str, strict: bool = True, param_key: str | None = "params") -> None:
        """BasicSR's load_network through `dan_blocks.inference.loading.dan_state_dict` (``weights_only=True``,
        errors naming the file; the DAN and MANet releases' own files are converted to dan-blocks' layout, so
        they can be given as ``pretrain_network_g`` directly)."""
        net = self.get_bare_model(net)
        loaded = dan_state_dict(load_path, param_key)
        bad = nonfinite_tensors(loaded)
        if bad:
            raise ValueError(f"{load_path} [{param_key}] {describe_nonfinite(bad)}")
        get_root_logger().info(f"Loading {net.__class__.__name__} model from {load_path} [{param_key}].")
        if strict:  # a readable diff of keys and shapes, naming the file (torch's message names neither)
            try:
                load_state_strict(net, loaded, f"{load_path} [{param_key}]")
            except CheckpointMismatchError as err:
                raise CheckpointMismatchError(f"{err}{self._recorded_difference(load_path, net)}") from None
            return
        self._print_different_keys_loading(net, loaded, strict)  # moves shape mismatches aside, as BasicSR
        net.load_state_dict(loaded, strict=False)



