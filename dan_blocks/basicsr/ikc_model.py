"""``IKCModel``: IKC's training stages in BasicSR (``model_type: IKCModel``, network ``IKC``).

- stage ``sftmd`` (``train_SFTMD.py``): the non-blind SFTMD restorer with the TRUE codes, L1(SR, HR); the code of
  each training kernel is its PCA projection through the network's ``pca`` (no mean subtraction);
- stage ``correct`` (``train_IKC.py``): SFTMD frozen (load stage 1's weights with ``pretrain_network_g``); per
  iteration one Predictor step with MSE(P(LR), code), then ``steps`` times: SR = SFTMD(LR, estimate) without
  gradients, one Corrector step with MSE(C(SR, estimate), code), estimate <- the Corrector's output (detached).

Options under ``train.ikc``: ``stage`` (``sftmd`` / ``correct``), ``steps`` (7).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..archs.ikc_arch import IKC
from .dan_model import DANModel

__all__ = ["IKC_KEYS", "IKCModel"]

#: the keys of ``train.ikc``
IKC_KEYS = ("stage", "steps")
_STAGES = ("sftmd", "correct")


class IKCModel(DANModel):
    """`DANModel` for an `IKC` network, with IKC's two training stages (see the module)."""

    def __init__(self, opt: dict[str, Any]) -> None:
        ikc: dict[str, Any] = {}
        if opt.get("is_train") and isinstance(opt.get("train"), dict):
            ikc = dict(opt["train"].pop("ikc", None) or {})
            unknown = [k for k in ikc if k not in IKC_KEYS]
            if unknown:
                raise KeyError(f"train.ikc: unknown key(s) {unknown}; accepted: {', '.join(IKC_KEYS)}")
            opt["train"].setdefault("kernel_opt", None)  # the code losses are IKC's own
        self.stage = str(ikc.get("stage", "sftmd"))
        if self.stage not in _STAGES:
            raise ValueError(f"train.ikc.stage must be one of {_STAGES}, got {self.stage!r}")
        self.steps = int(ikc.get("steps", 7))
        if self.steps < 1:
            raise ValueError(f"train.ikc.steps must be >= 1, got {self.steps}")
        super().__init__(opt)
        if not isinstance(self.get_bare_model(self.net_g), IKC):
            raise TypeError(f"IKCModel trains an IKC network, got {type(self.get_bare_model(self.net_g)).__name__}")

    def setup_optimizers(self) -> None:
        net = self.get_bare_model(self.net_g)
        if self.stage == "correct":  # the restorer stays as stage 1 left it
            for param in net.restorer.parameters():
                param.requires_grad = False
        else:  # stage 1 trains the restorer alone
            for module in (net.estimator, net.initial_estimator):
                for param in module.parameters():
                    param.requires_grad = False
        super().setup_optimizers()

    def _true_codes(self) -> Tensor:
        net = self.get_bare_model(self.net_g)
        kernel = self.gt_kernel.float()
        if kernel.dim() != 3:
            raise ValueError("IKCModel needs one kernel per image (B, k, k) from the degradation, got "
                             f"{list(kernel.shape)}")
        return net.pca.encode(kernel).detach()  # type: ignore[no-any-return, unused-ignore]

    def _step(self, loss: Tensor, losses: dict[str, Tensor], name: str, current_iter: int) -> None:
        self._check_finite_loss(loss, {name: loss}, current_iter)
        self.optimizer_g.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer_g.step()
        losses[name] = loss.detach()

    def optimize_parameters(self, current_iter: int) -> None:
        net = self.get_bare_model(self.net_g)
        code = self._true_codes()
        losses: dict[str, Tensor] = {}
        if self.stage == "sftmd":
            if self.cri_pix is None:
                raise ValueError("IKCModel's sftmd stage needs train.pixel_opt (the release: L1Loss)")
            self.output = net.restorer(self.lq, code)
            self._step(self.cri_pix(self.output, self.gt), losses, "l_pix", current_iter)
        else:
            estimate = net.initial_estimator(None, self.lq)
            self._step(F.mse_loss(estimate, code), losses, "l_predictor", current_iter)
            estimate = estimate.detach()
            total = torch.zeros((), device=code.device)
            for _ in range(self.steps):
                with torch.no_grad():
                    sr = net.restorer(self.lq, estimate)
                corrected = net.estimator(sr, self.lq, estimate)
                loss = F.mse_loss(corrected, code)
                self._step(loss, {}, "l_corrector", current_iter)
                total = total + loss.detach()
                estimate = corrected.detach()
            self.output = sr
            losses["l_corrector"] = total / self.steps
        self.log_dict = self.reduce_loss_dict(losses)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)
