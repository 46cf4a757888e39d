"""Exception classes of the data pipeline (one-line messages naming the file and the problem)."""
from __future__ import annotations

from ..errors import UserError


class DataError(UserError, ValueError):
    """A data set that cannot be used as configured (no files, bad annotation, too many bad videos)."""


class VideoDecodeError(UserError, RuntimeError):
    """A video that cannot be opened or decoded; ``str()`` is ``'<path>: <reason>'``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):  # picklable across worker processes
        return (VideoDecodeError, (self.path, self.reason))
