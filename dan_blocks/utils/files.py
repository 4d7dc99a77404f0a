"""Atomic writes: every file dan-blocks writes appears whole or not at all.

The data goes to a hidden temporary file next to the target (same folder, so same file system), is fsync-ed,
and replaces the target with ``os.replace``. The temporary name ends in ``.tmp<pid>`` so that nothing scanning
for the target's extension (``*.state``, ``*.pth``) picks it up; writers that choose a format from the name
(OpenCV) ask for the extension to be kept. On any error the temporary file is removed and the previous target
stays as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["atomic_path", "atomic_save", "atomic_write_text", "temp_path"]


def temp_path(path: str | os.PathLike[str], keep_extension: bool = False) -> str:
    """The temporary name used for ``path``: ``dir/.name.ext.tmp<pid>``, or ``dir/.name.tmp<pid>.ext`` with
    ``keep_extension`` (hidden, in the same folder)."""
    path = os.fspath(path)
    folder, base = os.path.split(path)
    if not keep_extension:
        return os.path.join(folder, f".{base}.tmp{os.getpid()}")
    root, ext = os.path.splitext(base)
    return os.path.join(folder, f".{root}.tmp{os.getpid()}{ext}")


def _check_target(path: str) -> None:
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a directory; give a file name")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        what = "is a file, not a folder" if os.path.exists(folder) else "does not exist"
        raise FileNotFoundError(f"cannot write {path}: its folder {folder} {what}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], keep_extension: bool = False) -> Iterator[str]:
    """``with atomic_path(target) as tmp:`` write ``tmp`` however you like; it replaces ``target`` on success.

    ``keep_extension``: the temporary name ends with the target's extension (for writers that need it).

    Raises:
        IsADirectoryError / FileNotFoundError: ``target`` is a folder, or its folder is missing.
        OSError: from the write, with ``ENOSPC`` named as a full disk; the target is then unchanged.
    """
    target = os.fspath(path)
    _check_target(target)
    tmp = temp_path(target, keep_extension)
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise FileNotFoundError(f"atomic write of {target}: the writer produced no file")
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as err:
        _discard(tmp)
        if err.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"no space left on the device while writing {target}; "
                          "the previous file (if any) is unchanged") from err
        raise
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(tmp)


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)`` atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
