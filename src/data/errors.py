"""Exception classes of the data pipeline (one-line messages naming the file and the problem)."""
from __future__ import annotations

from ..errors import UserError


class DataError(UserError, ValueError):
    """A data set that cannot be used as configured (no files, bad annotation, too many bad videos)."""


class DataStopError(DataError, RuntimeError):
    """The input pipeline stopped inside a MindSpore dataset worker (more bad videos than
    ``data_loader.max_bad_fraction``), re-raised in the main process with the worker's one-line
    message. Also a RuntimeError, what MindSpore raises for it, so callers catching that still do."""


class VideoDecodeError(UserError, RuntimeError):
    """A video that cannot be opened or decoded; ``str()`` is ``'<path>: <reason>'``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):  # picklable across worker processes
        return (VideoDecodeError, (self.path, self.reason))
