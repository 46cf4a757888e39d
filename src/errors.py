"""One base exception for problems the user can fix (bad config, data, checkpoint, arguments).

Entry points wrap their ``main`` with :func:`src.cli.run_cli`: a :class:`UserError` prints
``error: <message>`` on one line and exits 2 (3 for a non-finite loss); anything else is a bug and
keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input; its message is one line naming the file/key and what was expected."""

    exit_code = 2

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


__all__ = ["UserError"]
