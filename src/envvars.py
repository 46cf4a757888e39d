"""The zoo's environment variables, in one table, with their deprecated spellings.

The variables once said ``X3D_`` although they serve every model family; the ``VIDEO_ZOO_`` names
(after the ``ms-video-zoo`` package) replace them. An old name is still read when the new one is
not set, with one ``DeprecationWarning``. (The C++ kernels read ``VIDEO_ZOO_KERNEL_THREADS`` and
``X3D_KERNEL_THREADS`` themselves, in ``src/models/kernels/parallel.h``.)
"""
from __future__ import annotations

import os
import warnings
from typing import Dict, Optional, Set

KERNEL_THREADS = "VIDEO_ZOO_KERNEL_THREADS"    # worker threads of the C++ kernels
KERNEL_CACHE = "VIDEO_ZOO_KERNEL_CACHE"        # folder of the built kernel libraries
DISABLE_KERNELS = "VIDEO_ZOO_DISABLE_KERNELS"  # 1: never build the C++ kernels (pure MindSpore)
LOCAL_WORKERS = "VIDEO_ZOO_LOCAL_WORKERS"      # processes sharing this machine's cores

# new name -> the deprecated name still read in its place
DEPRECATED_NAMES: Dict[str, str] = {
    KERNEL_THREADS: "X3D_KERNEL_THREADS",
    KERNEL_CACHE: "X3D_KERNEL_CACHE",
    DISABLE_KERNELS: "X3D_DISABLE_KERNELS",
    LOCAL_WORKERS: "X3D_LOCAL_WORKERS",
}
_WARNED: Set[str] = set()


def getenv(name: str, default: Optional[str] = None) -> Optional[str]:
    """The value of ``name`` (a ``VIDEO_ZOO_*`` variable), else of its deprecated ``X3D_*``
    spelling (warned about once), else ``default``. An empty value counts as unset."""
    value = os.environ.get(name)
    if value:
        return value
    old = DEPRECATED_NAMES.get(name)
    value = os.environ.get(old) if old else None
    if value:
        if old not in _WARNED:
            _WARNED.add(old)
            warnings.warn(f"environment variable {old} is deprecated; set {name} instead",
                          DeprecationWarning, stacklevel=2)
        return value
    return default


__all__ = ["KERNEL_THREADS", "KERNEL_CACHE", "DISABLE_KERNELS", "LOCAL_WORKERS", "DEPRECATED_NAMES", "getenv"]
