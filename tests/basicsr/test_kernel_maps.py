"""Per-pixel (spatially variant) kernels in DANModel's kernel loss and kernel-error metric."""

from __future__ import annotations

import tempfile

import torch
import torch.nn.functional as F
from test_model_dan import make_opt

import dan_blocks
from dan_blocks.basicsr import DANModel
from dan_blocks.metrics import as_kernel_map, kernel_error, mean_kernel


def _kernels(b: int, k: int, seed: int) -> torch.Tensor:
    x = torch.rand(b, k, k, generator=torch.Generator().manual_seed(seed))
    return x / x.sum(dim=(1, 2), keepdim=True)


def _per_pixel(kernels_hw: torch.Tensor) -> torch.Tensor:
    """(B, h, w, k, k) -> (B, k*k, h, w), written with permute/reshape."""
    b, h, w, k, _ = kernels_hw.shape
    return kernels_hw.reshape(b, h, w, k * k).permute(0, 3, 1, 2)


def test_kernel_error_per_pixel_equals_loop_over_pixels() -> None:
    est = torch.stack([_kernels(2, 5, s) for s in range(6)], dim=1).reshape(2, 2, 3, 5, 5)
    ref = torch.stack([_kernels(2, 5, 10 + s) for s in range(6)], dim=1).reshape(2, 2, 3, 5, 5)
    want = torch.stack([
        torch.stack([(est[b, i, j] - ref[b, i, j]).abs().sum() for i in range(2) for j in range(3)]).mean()
        for b in range(2)
    ])
    torch.testing.assert_close(kernel_error(_per_pixel(est), _per_pixel(ref)), want)


def test_uniform_map_gives_the_global_error_and_sizes_align() -> None:
    est, ref = _kernels(3, 5, 0), _kernels(3, 7, 1)
    ref_map = _per_pixel(ref[:, None, None].expand(3, 4, 2, 7, 7).contiguous())
    global_err = kernel_error(est, ref)  # 7x7 reference cropped to the 5x5 estimate
    torch.testing.assert_close(kernel_error(est, ref_map), global_err)
    padded = F.pad(est, (1, 1, 1, 1))  # 5x5 -> 7x7 by zero taps
    torch.testing.assert_close(as_kernel_map(est, 7)[..., 0, 0], padded.reshape(3, 49))
    torch.testing.assert_close(mean_kernel(ref_map), ref)


def test_dan_model_kernel_loss_with_per_pixel_ground_truth() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = DANModel(make_opt(tmp))
    kernel = _kernels(2, 21, 0).requires_grad_()
    gt_hw = torch.stack([_kernels(2, 21, 5 + s) for s in range(4)], dim=1).reshape(2, 2, 2, 21, 21)
    model.gt_kernel = _per_pixel(gt_hw)
    out = dan_blocks.DANOutput(torch.zeros(1), [], [torch.zeros(2, 10)], [kernel])
    loss = model._kernel_term(out, -1)
    weight = model.opt["train"]["kernel_opt"]["loss_weight"]
    want = weight * (kernel[:, None, None] - gt_hw).abs().mean()
    torch.testing.assert_close(loss, want)
    loss.backward()
    assert kernel.grad is not None and kernel.grad.abs().sum() > 0
