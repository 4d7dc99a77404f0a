"""``DASRModel``: DASR's two training stages in BasicSR (``model_type: DASRModel``, network ``DASR``).

- stage ``contrastive`` (DASR's epochs 1-100): the degradation encoder alone, MoCo's contrastive loss
  (`dan_blocks.archs.DegradationContrast`);
- stage ``joint`` (epochs 101-600): L1(SR, HR) + ``weight`` x the contrastive loss.

Every HR crop of a batch gives two patches (its left and right halves) degraded with the SAME kernel (one per
image, drawn by the ``degradation:`` block; the release crops two random patches of one HR image): the query
patch (restored, and the contrastive query) and the key patch. Options under ``train.contrastive``:
``stage`` (``contrastive`` / ``joint``), ``weight`` (1.0), ``queue_size`` (8192; the batch must divide it),
``momentum`` (0.999), ``temperature`` (0.07). The key encoder and the queue are not saved (the release drops
them too); a resumed run rebuilds them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..archs.dasr_arch import DASR, DegradationContrast
from .dan_model import DANModel

__all__ = ["CONTRASTIVE_KEYS", "DASRModel"]

#: the keys of ``train.contrastive``
CONTRASTIVE_KEYS = ("stage", "weight", "queue_size", "momentum", "temperature")
_STAGES = ("contrastive", "joint")


class DASRModel(DANModel):
    """`DANModel` for a `DASR` network, with DASR's contrastive stage and joint stage (see the module)."""

    def __init__(self, opt: dict[str, Any]) -> None:
        contrastive: dict[str, Any] = {}
        if opt.get("is_train") and isinstance(opt.get("train"), dict):
            contrastive = dict(opt["train"].pop("contrastive", None) or {})
            unknown = [k for k in contrastive if k not in CONTRASTIVE_KEYS]
            if unknown:
                raise KeyError(f"train.contrastive: unknown key(s) {unknown}; accepted: {', '.join(CONTRASTIVE_KEYS)}")
        self.stage = str(contrastive.get("stage", "joint"))
        if self.stage not in _STAGES:
            raise ValueError(f"train.contrastive.stage must be one of {_STAGES}, got {self.stage!r}")
        self.contrastive_weight = float(contrastive.get("weight", 1.0))
        self._contrast_opts = {k: contrastive[k] for k in ("queue_size", "momentum", "temperature") if k in contrastive}
        super().__init__(opt)
        net = self.get_bare_model(self.net_g)
        if not isinstance(net, DASR):
            raise TypeError(f"DASRModel trains a DASR network, got network_g type {type(net).__name__}")
        if opt.get("is_train"):
            self.contrast = DegradationContrast(net.estimator, **self._contrast_opts).to(self.device)

    def init_training_settings(self) -> None:
        train_opt = self.opt["train"]
        train_opt.setdefault("kernel_opt", None)  # DASR estimates no kernel
        super().init_training_settings()

    def feed_data(self, data: dict[str, Any]) -> None:
        if "lq" in data or self.degradation is None:
            super().feed_data(data)
            return
        gt = data["gt"].to(self.device)
        width = gt.shape[-1] // 2 // self.scale * self.scale
        if width < self.scale:
            raise ValueError(f"DASRModel needs HR crops at least {2 * self.scale} pixels wide, got {gt.shape[-1]}")
        query, key = gt[..., :width], gt[..., width:2 * width]
        with torch.no_grad():  # the same generator state: the same kernel for both patches of an image
            self.lq, kernels = self.degradation(query.contiguous(), self._generator())
            self.lq_key, kernels_key = self.degradation(key.contiguous(), self._generator())
        if not torch.equal(kernels, kernels_key):
            raise RuntimeError("DASRModel: the two patches of an image were given different kernels")
        self.gt, self.gt_kernel = query, kernels.float()

    def optimize_parameters(self, current_iter: int) -> None:
        net = self.get_bare_model(self.net_g)
        assert isinstance(net, DASR)
        self.optimizer_g.zero_grad()
        gain = 255.0 / net.input_range
        fea, logits, labels = self.contrast(self.lq * gain, self.lq_key * gain)
        l_contrast = F.cross_entropy(logits, labels)
        losses: dict[str, Tensor] = {"l_contrast": l_contrast}
        total = l_contrast * (1.0 if self.stage == "contrastive" else self.contrastive_weight)
        if self.stage == "joint":
            self.output = net.restorer(self.lq * gain, fea) / gain
            if self.cri_pix is None:
                raise ValueError("DASRModel's joint stage needs train.pixel_opt (the release: L1Loss)")
            l_pix = self.cri_pix(self.output, self.gt)
            losses["l_pix"] = l_pix
            total = total + l_pix
        self._check_finite_loss(total, losses, current_iter)
        total.backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(losses)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)
