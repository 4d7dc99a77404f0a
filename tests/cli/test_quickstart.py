"""``dan-blocks quickstart``: the mechanics on a reduced run (the full run is measured, not tested here)."""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

import dan_blocks.basicsr  # noqa: F401  (makes basicsr importable, registers dan-blocks)
from dan_blocks.basicsr.console import basicsr_console_quiet
from dan_blocks.cli import quickstart
from dan_blocks.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = ROOT / "basicsr_options"
#: what BasicSR logs that the quickstart keeps off the console (its log files keep it)
BASICSR_DUMPS = ("Version Information", "Network: DANv2, with parameters", "Disable distributed.")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def fresh_basicsr_logger():
    """BasicSR's ``basicsr`` logger uninitialised before and after (its handlers hold this test's streams)."""
    import basicsr.utils.logger as basicsr_logger

    def reset() -> None:
        logger = logging.getLogger("basicsr")
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        basicsr_logger.initialized_logger.pop("basicsr", None)

    reset()
    yield
    reset()


def _y(img_bgr: np.ndarray) -> np.ndarray:
    img = img_bgr.astype(np.float64)
    return 16.0 + (65.481 * img[..., 2] + 128.553 * img[..., 1] + 24.966 * img[..., 0]) / 255.0


def _psnr_y(a: np.ndarray, b: np.ndarray, crop: int) -> float:
    mse = np.mean((_y(a)[crop:-crop, crop:-crop] - _y(b)[crop:-crop, crop:-crop]) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_shipped_quickstart_yml_is_what_the_command_trains() -> None:
    from basicsr.utils.options import ordered_yaml

    with open(OPTIONS / "quickstart.yml") as handle:
        shipped = yaml.load(handle, Loader=ordered_yaml()[0])
    expected = quickstart.quickstart_train_options()
    assert json.loads(json.dumps(shipped)) == json.loads(json.dumps(expected))


@pytest.mark.usefixtures("fresh_basicsr_logger")
def test_reduced_quickstart_writes_results_pictures_and_the_bicubic_baseline(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(quickstart.NETWORK, "nf", 8)
    monkeypatch.setattr(quickstart, "GT_SIZE", 32)
    monkeypatch.setattr(quickstart, "BATCH", 2)
    threads = torch.get_num_threads()
    try:
        assert main(["quickstart", "--out", str(tmp_path / "qs"), "--iters", "2"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "qs"
    captured = capsys.readouterr()
    printed = captured.out
    assert f"output folder: {out}" in printed and "| bicubic |" in printed
    # the console: the quickstart's progress and results, not BasicSR's banner, options or network dumps ...
    for dump in BASICSR_DUMPS:
        assert dump not in printed + captured.err
    assert "quickstart: 1/4 training" in printed and "quickstart: 4/4" in printed
    # ... which are in the log files BasicSR wrote, one per pipeline
    results = json.loads((out / "quickstart_results.json").read_text())
    logs = [Path(p) for p in results["logs"]]
    assert [p.parent for p in logs] == [out / "experiments" / quickstart.TRAIN_NAME, out / "results" /
                                        quickstart.TEST_NAME]
    for log in logs:
        text = log.read_text()
        assert all(dump in text for dump in BASICSR_DUMPS), log
    assert "Testing skimage-test_gaussian8_x4" in logs[1].read_text()
    # the picture: LR | bicubic | DAN | HR, estimated | true kernel, small
    figure = out / "quickstart.png"
    assert results["figure"] == str(figure) and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure.stat().st_size < 300_000
    picture = cv2.imread(str(figure))
    assert picture.shape[0] < 300 and picture.shape[1] > 4 * picture.shape[0]
    assert set(results) >= {"bicubic", "dan", "psnr_y_per_iteration", "kernel_error_per_iteration", "train_seconds"}
    assert len(results["psnr_y_per_iteration"]) == 4 == len(results["kernel_error_per_iteration"])
    assert results["psnr_y_per_iteration"][-1] == pytest.approx(results["dan"]["psnr_y"])
    manifest = json.loads((out / "testset_gaussian8_x4" / "manifest.json").read_text())
    pairs = manifest["pairs"]
    assert len(pairs) == 24 and manifest["protocol"] == "gaussian8" and manifest["scale"] == 4
    pictures = Path(results["pictures"])
    from basicsr.utils.matlab_functions import imresize as basicsr_imresize

    dan, bicubic = [], []
    for pair in pairs:
        stem = Path(pair["lr"]).stem
        gt = cv2.imread(str(out / "testset_gaussian8_x4" / pair["gt"]))
        lr = cv2.imread(str(out / "testset_gaussian8_x4" / pair["lr"]))
        sr = cv2.imread(str(pictures / f"{stem}_{quickstart.TEST_NAME}.png"))
        assert (pictures / f"{stem}_{quickstart.TEST_NAME}_kernel.png").is_file()
        dan.append(_psnr_y(sr, gt[: sr.shape[0], : sr.shape[1]], 4))
        up = basicsr_imresize(lr[..., ::-1].astype(np.float64) / 255.0, 4)  # BasicSR's own MATLAB bicubic
        up = np.round(np.clip(up, 0, 1) * 255).astype(np.uint8)[..., ::-1]
        bicubic.append(_psnr_y(up, gt[: up.shape[0], : up.shape[1]], 4))
    assert results["dan"]["psnr_y"] == pytest.approx(float(np.mean(dan)), abs=1e-3)
    assert results["bicubic"]["psnr_y"] == pytest.approx(float(np.mean(bicubic)), abs=2e-3)


def test_bad_arguments_are_reported(tmp_path, capsys) -> None:
    assert main(["quickstart", "-o", str(tmp_path), "--iters", "0"]) == 2  # a usage error
    assert "--iters" in capsys.readouterr().err


def _printed_sr_command(printed: str) -> tuple[str, list[str]]:
    lines = printed.splitlines()
    model = next(line.split(": ", 1)[1] for line in lines if line.startswith("trained model: "))
    command = lines[lines.index("super-resolve your own pictures with it (files or folders; add --tile 256 for "
                                "large ones):") + 1].strip()
    return model, shlex.split(command)


def _path_without_this_environment() -> str:
    """PATH without the folder of the running Python (a virtual environment's bin/): a new shell that has not
    activated the environment."""
    here = os.path.realpath(os.path.dirname(sys.executable))
    kept = [p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p and os.path.realpath(p) != here]
    return os.pathsep.join(kept)


@pytest.mark.usefixtures("fresh_basicsr_logger")
def test_the_printed_sr_command_runs_as_printed(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(quickstart.NETWORK, "nf", 8)
    monkeypatch.setattr(quickstart, "GT_SIZE", 32)
    monkeypatch.setattr(quickstart, "BATCH", 2)
    monkeypatch.setenv("PATH", _path_without_this_environment())  # the README's commands do not activate .venv
    out = tmp_path / "quick start"  # a space: the printed command must quote it
    threads = torch.get_num_threads()
    try:
        assert main(["quickstart", "-o", str(out), "--iters", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    model, args = _printed_sr_command(capsys.readouterr().out)
    assert model == str(out / "experiments" / quickstart.TRAIN_NAME / "models" / "net_g_latest.pth")
    assert Path(model).is_file()
    program = quickstart.dan_blocks_program()
    assert args[: len(program) + 3] == [*program, "sr", "-m", model] and args[-2] == "-o"
    assert program != ["dan-blocks"]  # not on this PATH: the full path of this environment's script
    # the command as printed, in a fresh process whose shell has not activated the environment
    proc = subprocess.run([*args, "--no-progress"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": _path_without_this_environment()})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lr_path = args[len(program) + 3]
    stem = Path(lr_path).stem
    written = Path(args[-1])
    assert (written / f"{stem}_x4.png").is_file() and (written / f"{stem}_x4_kernel_png.png").is_file()
    sr = cv2.imread(str(written / f"{stem}_x4.png"))
    lr = cv2.imread(lr_path)
    assert sr.shape == (4 * lr.shape[0], 4 * lr.shape[1], 3)


def test_the_program_is_the_short_name_only_when_path_finds_this_installation(tmp_path, monkeypatch) -> None:
    script = Path(sys.executable).parent / "dan-blocks"
    if not script.is_file():
        monkeypatch.setenv("PATH", str(tmp_path))
        assert quickstart.dan_blocks_program() == [sys.executable, "-m", "dan_blocks"]
        return
    monkeypatch.setenv("PATH", os.pathsep.join([str(script.parent), os.defpath]))
    assert quickstart.dan_blocks_program() == ["dan-blocks"]
    other = tmp_path / "dan-blocks"  # another installation's script first on PATH
    other.write_text("#!/bin/sh\nexit 3\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path), str(script.parent)]))
    assert quickstart.dan_blocks_program() == [str(script)]
    monkeypatch.setenv("PATH", _path_without_this_environment())
    assert quickstart.dan_blocks_program() == [str(script)]


@pytest.mark.usefixtures("fresh_basicsr_logger")
def test_console_routing_exists_only_while_the_quickstart_runs(tmp_path, capsys) -> None:
    import basicsr.test
    import basicsr.train

    originals = basicsr.train.get_root_logger, basicsr.test.get_root_logger
    with basicsr_console_quiet() as logs:
        logger = basicsr.train.get_root_logger(logger_name="basicsr", log_file=str(tmp_path / "train.log"))
        logger.info("BANNER of the train pipeline")
        logger.info("[quick..][epoch:  1, iter:     100, lr:(2.000e-03,)] l_pix: 1.0e-01")
        logger.warning("a warning")
        # a second pipeline in the same process gets its own log file
        logger = basicsr.test.get_root_logger(logger_name="basicsr", log_file=str(tmp_path / "test.log"))
        logger.info("BANNER of the test pipeline")
    assert (basicsr.train.get_root_logger, basicsr.test.get_root_logger) == originals
    assert logs == [str(tmp_path / "train.log"), str(tmp_path / "test.log")]
    err = capsys.readouterr().err
    assert "BANNER" not in err and "iter:     100" in err and "a warning" in err
    assert "BANNER of the train pipeline" in (tmp_path / "train.log").read_text()
    assert "BANNER of the test pipeline" in (tmp_path / "test.log").read_text()
    # afterwards BasicSR's console output is as usual (dan-blocks train / test)
    logging.getLogger("basicsr").info("network dump after the quickstart")
    assert "network dump after the quickstart" in capsys.readouterr().err


def test_the_committed_picture_is_small_and_shown_in_readme_and_docs() -> None:
    picture = ROOT / "docs" / "assets" / "quickstart.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size < 300_000
    assert "](docs/assets/quickstart.png)" in (ROOT / "README.md").read_text()
    assert "](assets/quickstart.png)" in (ROOT / "docs" / "index.md").read_text()
