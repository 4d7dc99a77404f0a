"""Atomic writes: every file dan-blocks writes appears whole or not at all.

The data goes to a hidden temporary file next to the target (same folder, so same file system), is fsync-ed,
and replaces the target with ``os.replace``. The temporary name ends in ``.tmp<pid>`` so that nothing scanning
for the target's extension (``*.state``, ``*.pth``) picks it up; writers that choose a format from the name
(OpenCV) ask for the extension to be kept. On any error the temporary file is removed and the previous target
stays as it was.

A process killed during a save (SIGKILL, power loss) cannot remove its temporary file: `remove_stale_temp_files`
removes those whose writer is gone (DANModel calls it on the experiment's ``models/`` and ``training_states/``
when a training starts).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Iterator
from typing import Any

__all__ = ["atomic_path", "atomic_save", "atomic_write_text", "file_kind", "probe_space", "remove_stale_temp_files",
           "stale_temp_files", "temp_path"]

#: the names `temp_path` makes: ``.name.ext.tmp<pid>`` or ``.name.tmp<pid>.ext``
_TEMP_NAME = re.compile(r"^\..+\.tmp(?P<pid>\d+)(\.[^.]+)?$")


def file_kind(path: str | os.PathLike[str]) -> str | None:
    """None for a regular file (after symbolic links), else what it is, e.g. ``"a named pipe"`` (opening a pipe
    would wait forever for a writer), ``"a folder"`` or ``"unreadable (...)"``."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        return f"unreadable ({err.strerror})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


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
    if not path:
        raise FileNotFoundError(errno.ENOENT, "cannot write a file: the path is empty")
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
        IsADirectoryError / FileNotFoundError: ``target`` is a folder, its folder is missing, or it is empty.
        OSError: from the write, with ``ENOSPC`` named as a full disk; the target is then unchanged. The message
            names ``target`` (an error that names only the temporary file is raised again, same type and errno,
            naming both).
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
        named = _naming_target(err, target, tmp)
        if named is None:
            raise
        raise named from err
    except BaseException:
        _discard(tmp)
        raise


#: errnos of a folder that takes no new file; the message then says so
_CANNOT_CREATE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT}


def _naming_target(err: OSError, target: str, tmp: str) -> OSError | None:
    """``err`` again (same type and errno) with a message naming ``target``; None when it already does."""
    if target in str(err):
        return None
    cause = err.strerror or str(err)
    folder = os.path.dirname(os.path.abspath(target))
    hint = f"; cannot create a file in {folder}" if err.errno in _CANNOT_CREATE and os.path.isdir(folder) else ""
    message = f"cannot write {target}: {cause}{hint} (temporary file {tmp})"
    try:
        return type(err)(err.errno, message) if err.errno is not None else type(err)(message)
    except Exception:  # an OSError subclass with another constructor
        return OSError(err.errno, message) if err.errno is not None else OSError(message)


def _discard(tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(tmp)


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)`` atomically.

    A full disk: torch's own file writer reports it as an obscure ``RuntimeError`` (``unexpected pos ...``);
    when ``torch.save`` fails so, a probe write to the temporary file tells whether the disk is full, and then
    the error is ``OSError(ENOSPC)`` naming ``path`` (see `atomic_path`). A temporary file that cannot be
    created (a read-only folder, ``/proc``) is an ``OSError`` naming ``path`` and the cause, not torch's
    ``RuntimeError: ... open file failed``."""
    import torch

    with atomic_path(path) as tmp:
        open(tmp, "wb").close()  # torch's own file writer reports a failed open as an obscure RuntimeError
        try:
            torch.save(obj, tmp)
        except RuntimeError as err:
            probe_space(tmp, err)
            if "open file failed" in str(err):
                first = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise OSError(errno.EIO, f"torch.save could not open the file ({first})") from err
            raise


def probe_space(tmp: str, cause: BaseException) -> None:
    """Raise ``OSError(ENOSPC)`` from ``cause`` when 64 KiB more cannot be written to ``tmp`` (for writers that
    report a full disk only as a failure: ``torch.save``, ``cv2.imwrite``); `atomic_path` then names the target."""
    try:
        with open(tmp, "ab") as handle:
            handle.write(bytes(65536))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"No space left on device ({cause})") from cause


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


def stale_temp_files(folder: str | os.PathLike[str], include_own: bool = False) -> list[str]:
    """The temporary files of `atomic_path` directly in ``folder`` whose writing process is no longer alive
    (sorted paths; none when ``folder`` does not exist).

    ``include_own``: count those named with this process's id as stale too (true when the caller knows it has
    no write in progress, e.g. at start-up: in a container a restarted program often gets the id of the one
    that was killed). A file of a living process is never included (it may be being written)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return []
    found = []
    for name in sorted(os.listdir(folder)):
        match = _TEMP_NAME.match(name)
        path = os.path.join(folder, name)
        if match is None or not os.path.isfile(path) or os.path.islink(path):
            continue
        pid = int(match["pid"])
        if (include_own and pid == os.getpid()) or (pid != os.getpid() and not _pid_alive(pid)):
            found.append(path)
    return found


def remove_stale_temp_files(folder: str | os.PathLike[str], include_own: bool = False) -> list[str]:
    """Remove `stale_temp_files` of ``folder``; returns the paths removed (one that vanished meanwhile is not
    listed)."""
    removed = []
    for path in stale_temp_files(folder, include_own):
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed
