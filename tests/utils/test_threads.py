"""default_threads / apply_threads: OMP_NUM_THREADS is obeyed, otherwise the CPUs are shared among the node's
processes; bad counts are refused."""

from __future__ import annotations

import os

import pytest
import torch

from dan_blocks.utils import threads


def test_omp_num_threads_is_obeyed(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "5,2")  # an OpenMP nested list: the outer level counts
    assert threads.default_threads() == 5


def test_bad_omp_value_is_named_and_ignored(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    with pytest.warns(RuntimeWarning, match="OMP_NUM_THREADS='many'"):
        assert threads.default_threads() == threads.available_cpus()


def test_default_without_omp_divides_among_local_processes(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: 8)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert threads.default_threads() == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert threads.default_threads() == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert threads.default_threads() == 1


def test_available_cpus_not_above_affinity():
    if hasattr(os, "sched_getaffinity"):
        assert 1 <= threads.available_cpus() <= len(os.sched_getaffinity(0))


def test_apply_threads_sets_torch_and_refuses_bad_counts(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert threads.apply_threads(1) == 1
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert threads.apply_threads(None) == 2
        assert torch.get_num_threads() == 2
        for bad in (0, -1, 1.5, True):
            with pytest.raises(ValueError, match="positive integer"):
                threads.apply_threads(bad)  # type: ignore[arg-type]
    finally:
        torch.set_num_threads(before)


def test_parse_threads_message():
    import argparse

    assert threads.parse_threads("4") == 4
    with pytest.raises(argparse.ArgumentTypeError, match="--threads"):
        threads.parse_threads("0")
