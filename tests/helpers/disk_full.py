"""A full disk, emulated for one folder: once its room is spent, a write there stores what still
fits and raises ``OSError(ENOSPC)``, as a real full disk does (a partial file is left behind).

Both writers a run uses are patched: Python's ``open`` (text files, logs, plots) and MindSpore's
checkpoint file system (``save_checkpoint`` writes through ``_ckpt_fs.create``).

In-process::

    with FullDisk(folder, room=1000) as disk:      # 1000 more bytes fit, then ENOSPC
        ...
    disk.cut                                       # the files a write was cut short in

In a subprocess (the disk is full from the (N+1)-th checkpoint file on)::

    python -m tests.helpers.disk_full FOLDER --checkpoints-ok N --room BYTES -- train.py ARGS...
"""
from __future__ import annotations

import argparse
import builtins
import errno
import os
import runpy
import sys
from typing import Any, List, Optional


class _File:
    """A file object whose writes spend the disk's room."""

    def __init__(self, f: Any, disk: "FullDisk", path: str) -> None:
        self._f, self._disk, self._path = f, disk, path

    def write(self, data: Any) -> int:
        return self._disk._write(self._f, self._path, data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __enter__(self) -> "_File":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._f.close()

    def __iter__(self):
        return iter(self._f)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


class FullDisk:
    """Writes under ``folder`` fail with ENOSPC once ``room`` bytes are spent. With
    ``checkpoints_ok=N`` the disk has no limit until the (N+1)-th checkpoint file is created;
    from then on ``room`` counts for every write."""

    def __init__(self, folder: str, room: int = 0, checkpoints_ok: int = 0) -> None:
        self.folder = os.path.abspath(folder)
        self.room = int(room)
        self.checkpoints_left = int(checkpoints_ok)
        self.full = self.checkpoints_left == 0
        self.cut: List[str] = []
        self._saved: List[Any] = []

    def _write(self, f: Any, path: str, data: Any) -> int:
        if not self.full:
            return f.write(data)
        fits = max(0, min(len(data), self.room))
        if fits:
            f.write(data[:fits])
            self.room -= fits
        if fits < len(data):
            f.flush()
            if path not in self.cut:
                self.cut.append(path)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return fits

    def _ours(self, path: Any, mode: str) -> bool:
        return (isinstance(path, (str, os.PathLike)) and any(c in mode for c in "wax+")
                and os.path.abspath(os.fspath(path)).startswith(self.folder + os.sep))

    def _wrap(self, real_open: Any, checkpoint: bool = False) -> Any:
        def patched(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            f = real_open(file, mode, *args, **kwargs)
            if not self._ours(file, mode):
                return f
            if checkpoint:
                if self.checkpoints_left == 0:
                    self.full = True
                self.checkpoints_left = max(0, self.checkpoints_left - 1)
            return _File(f, self, os.path.abspath(os.fspath(file)))
        return patched

    def __enter__(self) -> "FullDisk":
        from mindspore.train import serialization
        if hasattr(serialization, "_ensure_ckpt_fs_initialized"):
            serialization._ensure_ckpt_fs_initialized()
        fs = serialization._ckpt_fs
        self._saved = [(builtins, "open", builtins.open), (fs, "create", fs.create)]
        fs.create = self._wrap(fs.create, checkpoint=True)
        builtins.open = self._wrap(builtins.open)
        return self

    def __exit__(self, *exc: Any) -> None:
        for obj, name, value in reversed(self._saved):
            setattr(obj, name, value)
        self._saved = []


def main(argv: Optional[List[str]] = None) -> None:
    """Run a script (``train.py ...``) as ``__main__`` with ``FOLDER`` on an emulated disk."""
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--")
    p = argparse.ArgumentParser(prog="python -m tests.helpers.disk_full")
    p.add_argument("folder")
    p.add_argument("--checkpoints-ok", type=int, default=0)
    p.add_argument("--room", type=int, default=0)
    args = p.parse_args(argv[:split])
    script = argv[split + 1:]
    import mindspore  # noqa: F401  (before the script's data modules, as it does itself)
    sys.argv = script
    with FullDisk(args.folder, room=args.room, checkpoints_ok=args.checkpoints_ok):
        runpy.run_path(script[0], run_name="__main__")


if __name__ == "__main__":
    main()
