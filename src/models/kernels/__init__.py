"""Build-on-first-use loader for the C++ CPU kernels used through ``ops.Custom(func_type="aot")``.

The sources are compiled with ``-march=native`` (not portable), so the shared library is built
on the machine that runs it and cached per source + compiler + flags under
``$X3D_KERNEL_CACHE`` or ``~/.cache/x3d_mindspore/kernels/<hash>/``. The build writes to a
temporary file and renames it into place under a file lock, so parallel processes (``msrun``)
neither race nor load a half-written library. Callers fall back to pure MindSpore when
``library_path()`` returns None (no compiler, build failure, ``X3D_DISABLE_KERNELS=1``).
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

_LOG = logging.getLogger(__name__)
_SOURCES = {"channelwise": "channelwise_conv3d.cc", "vol2col": "vol2col.cc", "direct": "direct_conv3d.cc",
            "pointwise": "pointwise_conv3d.cc"}
# -fopenmp-simd: only the "omp simd" vectorisation hints; threads are plain std::threads
CXX_FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-pthread", "-shared", "-fPIC", "-std=c++14")
_CACHE: Dict[str, Optional[str]] = {}
_WARNED = set()


def cache_root() -> Path:
    """Where built libraries live (never inside the repository)."""
    env = os.environ.get("X3D_KERNEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "x3d_mindspore" / "kernels"


def _compiler() -> Optional[str]:
    cxx = os.environ.get("CXX") or "g++"
    return shutil.which(cxx)


def _compiler_id(cxx: str) -> str:
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0] if out.stdout else cxx
    except (OSError, subprocess.SubprocessError):
        return cxx


def library_path(name: str = "channelwise") -> Optional[str]:
    """Absolute path of the built kernel library ``name``, building it if needed; None if unavailable."""
    if name not in _SOURCES:
        raise ValueError(f"unknown kernel library '{name}', known: {', '.join(_SOURCES)}")
    if name in _CACHE:
        return _CACHE[name]
    path = None
    if os.environ.get("X3D_DISABLE_KERNELS", "") not in ("", "0"):
        _warn_once(name, "X3D_DISABLE_KERNELS is set")
    else:
        try:
            path = _build(name)
        except Exception as exc:  # any build problem means: use the pure-MindSpore path
            _warn_once(name, str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc))
    _CACHE[name] = path
    return path


def _warn_once(name: str, why: str) -> None:
    if name not in _WARNED:
        _WARNED.add(name)
        _LOG.warning("x3d: C++ kernel '%s' unavailable (%s); using the pure-MindSpore fallback", name, why)


def _build(name: str) -> str:
    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX or install g++)")
    src = Path(__file__).with_name(_SOURCES[name])
    digest = hashlib.sha256()
    digest.update(src.read_bytes())
    for header in sorted(src.parent.glob("*.h")):  # shared headers (parallel.h) are part of every build
        digest.update(header.read_bytes())
    digest.update(" ".join(CXX_FLAGS).encode())
    digest.update(_compiler_id(cxx).encode())
    out_dir = cache_root() / digest.hexdigest()[:16]
    lib = out_dir / f"lib{name}.so"
    if lib.exists():
        return str(lib)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; the others wait, then find the library
        if lib.exists():
            return str(lib)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
        os.close(fd)
        try:
            res = subprocess.run([cxx, *CXX_FLAGS, str(src), "-o", tmp], capture_output=True,
                                 text=True, timeout=600)
            if res.returncode != 0:
                raise RuntimeError(f"{cxx} failed: {res.stderr.strip()[-2000:]}")
            os.replace(tmp, lib)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return str(lib)


_LIBRARY_IN_GRAPH = re.compile(rb"(/[A-Za-z0-9_.+\-/]*/lib(?:%s)\.so):" % b"|".join(
    re.escape(n.encode()) for n in sorted(_SOURCES)))


def libraries_in_graph(path: str) -> List[str]:
    """The kernel libraries a saved graph (MINDIR) calls: MindSpore stores each AOT ``ops.Custom``
    as ``<absolute library path>:<function>``, so such a file runs only where those paths exist."""
    with open(path, "rb") as f:
        data = f.read()
    return sorted({m.group(1).decode() for m in _LIBRARY_IN_GRAPH.finditer(data)})
