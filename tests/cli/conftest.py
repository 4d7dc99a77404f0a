"""Fixtures of the CLI tests: a tiny model file for sr."""

from __future__ import annotations

import pathlib

import pytest
from _helpers import tiny_sr_model

import dan_blocks


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """`tiny_sr_model` saved as a dan-blocks model file."""
    path = tmp_path_factory.mktemp("model") / "m.pth"
    dan_blocks.save_model(tiny_sr_model(), path)
    return path
