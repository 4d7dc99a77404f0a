"""`dan_blocks.layers.local_part`: the marker records, inherits, and is dropped by an unmarked override."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dan_blocks.inference import tiled
from dan_blocks.layers import CRB
from dan_blocks.layers.local_part import LocalPart, local_part, local_parts


class _Gated(nn.Module):
    """A branch of two 3x3 convs (radius 2) gated by its own mean: not local as a whole."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, 1, 1)
        self.conv2 = nn.Conv2d(4, 3, 3, 1, 1)

    @local_part(lambda self: 2)
    def branch(self, x: Tensor) -> Tensor:
        return self.conv2(torch.relu(self.conv1(x)))

    def forward(self, x: Tensor) -> Tensor:
        res = self.branch(x)
        return x + res * torch.sigmoid(res.mean(dim=(2, 3), keepdim=True))


class _Unmarked(_Gated):
    def branch(self, x: Tensor) -> Tensor:  # overridden without the mark: no longer declared local
        return super().branch(x)


def test_marker_records_and_returns_the_method_unchanged() -> None:
    parts = local_parts(_Gated())
    assert set(parts) == {"branch"}
    assert parts["branch"].pooled is False and parts["branch"].radius(None) == 2
    assert local_parts(_Unmarked()) == {}
    assert isinstance(local_parts(CRB(8, 4, 4))["residual_branch"], LocalPart)
    assert CRB(8, 4, 4).branch_radius() == 2  # stretch_concat reads each pixel alone, then two 3x3 convs


def test_a_marked_branch_is_tiled_exactly() -> None:
    torch.manual_seed(0)
    module = _Gated().double()
    x = torch.rand(1, 3, 30, 23, dtype=torch.float64)
    calls: list[tuple[int, int]] = []
    module.conv1.register_forward_hook(lambda _m, _i, out: calls.append(tuple(out.shape[-2:])))
    with torch.no_grad():
        expected = module(x)
        calls.clear()
        got = tiled(module, x, 6)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    # the two convs ran together on tiles grown by the radius 2 (6 + 4 = 10 at most), never on the whole map
    assert calls and all(h <= 10 and w <= 10 for h, w in calls)
