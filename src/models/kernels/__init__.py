"""The C++ CPU kernels: build-on-first-use loader, and beside each ``.cc`` its Python binding.

Layout (one binding module per kernel family, next to its source)::

    channelwise_conv3d.cc / .py   depthwise convolution, forward (+ folded bias) and backward
    vol2col.cc / .py              patch gathering for ``gemm`` and its adjoint (col2vol)
    direct_conv3d.cc / .py        dense convolution without a patch matrix (stems), weight gradient
    pointwise_conv3d.cc / .py     1x1x1 convolution with fused bias / ReLU / residual / Swish / gate
    parallel.h                    the worker pool every kernel shares
    aot.py                        what the bindings share: ``ops.Custom(func_type="aot")`` creation,
                                  the geometry attribute and configuration tensors

The sources are compiled with ``-march=native`` (not portable), so the shared library is built
on the machine that runs it and cached per source + shared headers + compiler + flags under
``$VIDEO_ZOO_KERNEL_CACHE`` or ``~/.cache/ms_video_zoo/kernels/<hash>/`` (a changed source, such
as renamed symbols, is a new hash: a stale library is never loaded). The build writes to a
temporary file and renames it into place under a file lock, so parallel processes (``msrun``)
neither race nor load a half-written library. Callers fall back to pure MindSpore when
``library_path()`` returns None (no compiler, build failure, ``VIDEO_ZOO_DISABLE_KERNELS=1``).
The ``X3D_*`` spellings of these variables are read as deprecated aliases (``src/envvars.py``).
This module imports no MindSpore; the bindings do.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

from ... import envvars
from ...outputs import atomic_write

_LOG = logging.getLogger(__name__)
_SOURCES = {"channelwise": "channelwise_conv3d.cc", "vol2col": "vol2col.cc", "direct": "direct_conv3d.cc",
            "pointwise": "pointwise_conv3d.cc"}
# -fopenmp-simd: only the "omp simd" vectorisation hints; threads are plain std::threads
CXX_FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-pthread", "-shared", "-fPIC", "-std=c++14")
_CACHE: Dict[str, Optional[str]] = {}
_WARNED = set()


def cache_root() -> Path:
    """Where built libraries live (never inside the repository)."""
    env = envvars.getenv(envvars.KERNEL_CACHE)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ms_video_zoo" / "kernels"


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
    if envvars.getenv(envvars.DISABLE_KERNELS, "") not in ("", "0"):
        _warn_once(name, f"{envvars.DISABLE_KERNELS} is set")
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
        _LOG.warning("C++ kernel '%s' unavailable (%s); using the pure-MindSpore fallback", name, why)


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

        def compile_to(tmp: str) -> None:
            res = subprocess.run([cxx, *CXX_FLAGS, str(src), "-o", tmp], capture_output=True,
                                 text=True, timeout=600)
            if res.returncode != 0:
                raise RuntimeError(f"{cxx} failed: {res.stderr.strip()[-2000:]}")

        atomic_write(str(lib), compile_to)  # a library with its final name is always whole
    return str(lib)


_LIBRARY_IN_GRAPH = re.compile(rb"(/[A-Za-z0-9_.+\-/]*/lib(?:%s)\.so):" % b"|".join(
    re.escape(n.encode()) for n in sorted(_SOURCES)))


def libraries_in_graph(path: str) -> List[str]:
    """The kernel libraries a saved graph (MINDIR) calls: MindSpore stores each AOT ``ops.Custom``
    as ``<absolute library path>:<function>``, so such a file runs only where those paths exist."""
    with open(path, "rb") as f:
        data = f.read()
    return sorted({m.group(1).decode() for m in _LIBRARY_IN_GRAPH.finditer(data)})
