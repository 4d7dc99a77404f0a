"""A dan-blocks model built from a preset (shipped PCA) reloads through load_official_checkpoint."""

from __future__ import annotations

import torch

from dan_blocks import dan_v2, load_official_checkpoint


def test_preset_checkpoint_round_trips_through_the_official_loader(tmp_path) -> None:
    torch.manual_seed(0)
    model = dan_v2(2, nf=8, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8, loop=2).eval()
    torch.save({"params": model.state_dict()}, tmp_path / "net_g.pth")
    back = load_official_checkpoint(tmp_path / "net_g.pth", loop=2).eval()
    lr = torch.rand(1, 3, 10, 9)
    with torch.no_grad():
        want, got = model(lr), back(lr)
    for a, b in zip(want.srs + want.codes + want.kernels, got.srs + got.codes + got.kernels, strict=True):
        torch.testing.assert_close(a, b)
