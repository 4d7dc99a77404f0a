"""EstimatorV2(input_norm=True): the LR image's mean is removed from both inputs, also under exact tiling."""

from __future__ import annotations

import pytest
import torch

import dan_blocks
from dan_blocks import EstimatorV2, dan_v2

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_input_norm_is_the_plain_estimator_on_mean_removed_inputs() -> None:
    torch.manual_seed(0)
    normed = EstimatorV2(nf=8, num_blocks=1, scale=2, kernel_size=5, tail_nf=8, input_norm=True)
    plain = EstimatorV2(nf=8, num_blocks=1, scale=2, kernel_size=5, tail_nf=8)
    plain.load_state_dict(normed.state_dict())  # no new parameters: same keys as released
    lr, sr = torch.rand(2, 3, 6, 7), torch.rand(2, 3, 12, 14)
    mean = torch.stack([lr[i].sum() / lr[i].numel() for i in range(2)]).view(2, 1, 1, 1)
    torch.testing.assert_close(normed(sr, lr), plain(sr - mean, lr - mean))
    # brightness shifts of the pair do not change the estimate
    torch.testing.assert_close(normed(sr + 0.3, lr + 0.3), normed(sr, lr), atol=1e-5, rtol=1e-5)


def test_preset_flag_and_exact_tiling() -> None:
    torch.manual_seed(1)
    model = dan_v2(2, nf=8, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8, loop=2, residual="add",
                   est_input_norm=True).eval()
    assert model.estimator.input_norm
    lr = torch.rand(1, 3, 19, 17)
    with torch.no_grad():
        want = model(lr)
        got = dan_blocks.upscale(model, lr, tile_size=8)
    for a, b in zip(want.srs + want.kernels, got.srs + got.kernels, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
