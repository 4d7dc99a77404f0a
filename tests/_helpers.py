"""Small helpers shared by several test files (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import pathlib

import cv2
import numpy as np
import torch
from torch import nn

import dan_blocks
from dan_blocks.cli.main import main


def randomise(model: nn.Module, seed: int, std: float = 0.05) -> nn.Module:
    """Every parameter drawn from N(0, std) with a seeded generator, so outputs are not trivial (in place)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


def tiny_sr_model() -> dan_blocks.DAN:
    """A seeded DANv2 x2 small enough for CLI tests (eval mode)."""
    torch.manual_seed(0)
    return dan_blocks.dan_v2(2, nf=8, nb=1, ng=1, est_nf=8, est_nb=1, est_tail_nf=8, loop=2).eval()


def write_photo(path: pathlib.Path, shape: tuple[int, ...] = (10, 12, 3), seed: int = 0) -> np.ndarray:
    """Seeded random 8-bit pixels written with OpenCV; returns them."""
    pixels = np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)
    assert cv2.imwrite(str(path), pixels)
    return pixels


def run_sr(*args: object) -> int:
    """``dan-blocks sr --quiet ARGS`` in this process; its exit status."""
    return main(["sr", "--quiet", *map(str, args)])
