"""`dan_blocks.data.image_io.list_images` names entries that are not regular files (issue 22's second tour)."""

from __future__ import annotations

import os
import pathlib
import threading

import pytest
from _helpers import write_photo

from dan_blocks.cli.main import main
from dan_blocks.data import list_images

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")


def test_a_named_pipe_in_an_image_folder_is_named(tmp_path: pathlib.Path) -> None:
    write_photo(tmp_path / "a.png")
    os.mkfifo(tmp_path / "zz.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(OSError, match=r"dir.png \(a folder\), zz.png \(a named pipe\)"):
        list_images(tmp_path)


def test_make_testset_does_not_wait_on_a_named_pipe(tmp_path: pathlib.Path, capsys) -> None:
    # make-testset waited forever on the pipe (a training's HR folder is listed the same way)
    hr = tmp_path / "hr"
    hr.mkdir()
    write_photo(hr / "a.png", shape=(40, 40, 3))
    os.mkfifo(hr / "zz.png")
    result: list[int] = []
    args = ["make-testset", "--quiet", "--scale", "2", str(hr), str(tmp_path / "out")]
    worker = threading.Thread(target=lambda: result.append(main(args)))
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():  # unblock the reader so that the test run can end, then fail
        with open(hr / "zz.png", "wb"):
            pass
        worker.join()
        pytest.fail("make-testset hung on a named pipe")
    assert result == [1]
    assert "zz.png (a named pipe)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
