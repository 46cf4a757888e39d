"""Output files written safely: atomic writes, appends, a full disk as one line, partial files removed.

Every file a run writes (checkpoints, ``config.yaml``, ``label_map.json``, plots,
``eval_results.json``) goes through :func:`atomic_write`: the data lands in a hidden partial file
``.NAME.PID.tmp.EXT`` next to ``NAME``, which is renamed once complete, so a file with its final
name is always whole. Logs (``metrics.jsonl``, ``train.log``) go through :func:`append_text`.

A write that fails removes its partial files (also ``.NAME.PID.tmp.tmp``, the temporary name
MindSpore's ``save_checkpoint`` derives from ours; an append is cut back to its old length). A
write that fails because the disk or the quota is full raises :class:`NoSpaceError`, printed
by the entry points as one line (``error: DIR: no space left while saving NAME; ...``, exit 2).
:func:`remove_partials` removes what a killed or failed run left behind, at the next start and
before each checkpoint; partial files of a process that is still running are left alone.
"""
from __future__ import annotations

import errno
import glob
import os
import re
from typing import Callable, List, Optional, Union

from .errors import UserError

NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# what is left of a full disk when a library wraps the OSError in another exception: its text
NO_SPACE_TEXTS = tuple(os.strerror(n) for n in NO_SPACE_ERRNOS)  # "No space left on device", ...
# .NAME.PID.tmp.EXT (ours) and .NAME.PID.tmp.tmp (MindSpore's from ours); NAME.tmpPID (the data
# set's missing-file list, and config.yaml / label_map.json of earlier versions)
_PARTIAL = re.compile(r"^\..+\.(?P<pid>\d+)\.tmp(?:\.[A-Za-z0-9]+)?$|^.+\.tmp(?P<pid2>\d+)$")
# earlier versions' names without a process id: eval_results.json.tmp, curves.png.tmp.png
_PARTIAL_NO_PID = re.compile(r"^[^.].*\.(?:json|png)\.tmp(?:\.png)?$")


class NoSpaceError(UserError):
    """A file could not be written because the disk (or the quota) is full; one line naming the
    folder, the file and what is still intact."""


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is a write that failed for lack of
    space: an ``OSError`` with ENOSPC/EDQUOT, or an error whose text still says so (a library,
    or a MindSpore dataset worker, that wrapped it)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return True
        if isinstance(exc, (OSError, RuntimeError, ValueError)) and any(t in str(exc) for t in NO_SPACE_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def no_space_error(path: str, note: Optional[str] = None) -> NoSpaceError:
    """The one-line error for ``path`` not written for lack of space (``note``: what the user
    can do or still has; default: free some space and run again)."""
    folder = os.path.dirname(path) or "."
    return NoSpaceError(f"{folder}: no space left while saving {os.path.basename(path)}; "
                        f"{note or 'free some space and run again'}")


def partial_path(path: str) -> str:
    """The hidden partial file of ``path`` for this process: ``.NAME.PID.tmp.EXT`` beside it (the
    extension kept, so writers that infer the format from it still work)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{os.getpid()}.tmp{os.path.splitext(name)[1]}")


def remove_own_partials(path: str) -> List[str]:
    """Remove this process's partial files of ``path`` (ours and MindSpore's); returns them."""
    folder, name = os.path.split(os.path.abspath(path))
    found = glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(name)}.{os.getpid()}.tmp*"))
    return [p for p in found if _remove(p)]


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():  # our own earlier attempt (or a dead run whose id we now have)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _remove(path: str) -> bool:
    try:
        os.remove(path)
        return True
    except FileNotFoundError:
        return False


def remove_partials(directory: str) -> List[str]:
    """Remove the partial files of every kind in ``directory`` left by runs that are no longer
    running (killed, or stopped by a full disk); returns the removed paths. Call it where this
    process has no write in progress in ``directory``."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for name in sorted(names):
        m = _PARTIAL.match(name)
        stale = (m is not None and not _pid_running(int(m.group("pid") or m.group("pid2")))) \
            or _PARTIAL_NO_PID.match(name) is not None
        path = os.path.join(directory, name)
        if stale and os.path.isfile(path) and _remove(path):
            removed.append(path)
    return removed


def _fsync(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write(path: str, write: Union[str, bytes, Callable[[str], None]]) -> str:
    """Write ``path`` atomically: ``write`` (text, bytes, or a function writing the file it is
    given) fills the partial file, which is synced and renamed to ``path``. On any failure the
    partial files are removed; for lack of space :class:`NoSpaceError` is raised. Returns ``path``."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = partial_path(path)
        if callable(write):
            write(tmp)
        else:
            data = write.encode("utf-8") if isinstance(write, str) else write
            with open(tmp, "wb") as f:
                f.write(data)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        remove_own_partials(path)
        if is_no_space(e):
            raise no_space_error(path) from None
        raise
    return path


def append_text(path: str, text: str) -> None:
    """Append ``text`` to ``path``; a failed append is cut back to the file's old length (no
    half line), and lack of space raises :class:`NoSpaceError`."""
    existed = os.path.isfile(path)
    size = os.path.getsize(path) if existed else 0
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)
    except BaseException as e:
        try:
            if existed:
                with open(path, "r+b") as f:
                    f.truncate(size)
            else:
                _remove(path)
        except OSError:
            pass
        if is_no_space(e):
            raise no_space_error(path) from None
        raise


def trim_partial_line(path: str) -> bool:
    """Cut a last line without its newline (a run killed while appending) from the log ``path``;
    returns whether something was cut."""
    try:
        with open(path, "r+b") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return False
            f.truncate(data.rfind(b"\n") + 1)
            return True
    except FileNotFoundError:
        return False


__all__ = ["NoSpaceError", "is_no_space", "no_space_error", "partial_path", "remove_own_partials",
           "remove_partials", "atomic_write", "append_text", "trim_partial_line", "NO_SPACE_ERRNOS"]
