"""``DCLSModel``: DCLS's training in BasicSR (``model_type: DCLSModel``, network ``DCLS``).

Loss = L1(SR, HR) (``train.pixel_opt``) + ``train.kernel_opt`` (L1, weight 1) between the estimated kernel and
DCLS's kernel target (`dan_blocks.archs.dcls_kernel_target`: the LR-space kernel relating the clean LR
``imresize(HR)`` to the blurred LR ``imresize(HR * k)``, both unquantised, masked and thresholded as released),
not the HR-space kernel the degradation drew. The restorer gets the kernel detached (the estimator learns only
from its kernel loss), as `DCLS` does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..archs.dcls_arch import DCLS, dcls_kernel_target
from ..degradations import blur, imresize
from .dan_model import DANModel

__all__ = ["DCLSModel"]


class DCLSModel(DANModel):
    """`DANModel` for a `DCLS` network with DCLS's kernel target (see the module)."""

    kernel_target: Tensor

    def __init__(self, opt: dict[str, Any]) -> None:
        super().__init__(opt)
        if not isinstance(self.get_bare_model(self.net_g), DCLS):
            raise TypeError(f"DCLSModel trains a DCLS network, got {type(self.get_bare_model(self.net_g)).__name__}")

    def feed_data(self, data: dict[str, Any]) -> None:
        super().feed_data(data)
        self.__dict__.pop("kernel_target", None)
        if "lq" in data or not hasattr(self, "gt_kernel") or self.gt_kernel.dim() != 3:
            return
        net = self.get_bare_model(self.net_g)
        with torch.no_grad():
            hr = self.gt.float()
            lr_blur = imresize(blur(hr, self.gt_kernel.to(hr)), 1.0 / self.scale)
            lr_clean = imresize(hr, 1.0 / self.scale)
            self.kernel_target = dcls_kernel_target(lr_blur, lr_clean, int(net.kernel_size))

    def _kernel_term(self, out: Any, index: int) -> Tensor | None:
        if self.cri_kernel is None or not hasattr(self, "kernel_target"):
            return None
        return self.cri_kernel(out.kernels[index].float(), self.kernel_target)  # type: ignore[no-any-return, unused-ignore]
