"""Small helpers shared by several test files (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import torch
from torch import nn


def randomise(model: nn.Module, seed: int, std: float = 0.05) -> nn.Module:
    """Every parameter drawn from N(0, std) with a seeded generator, so outputs are not trivial (in place)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model
