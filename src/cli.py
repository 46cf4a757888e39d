"""One command-line convention for every entry point (train.py, eval.py, infer.py, src.tools.*).

* Dotted ``KEY=VALUE`` config overrides are accepted anywhere on the command line (also after
  ``--set``); they are taken out before argparse sees the rest.
* :func:`run_cli` runs an entry point's ``main``: a :class:`~src.errors.UserError` (bad config,
  data, checkpoint or argument) prints ``error: <message>`` on one line and exits with its
  ``exit_code`` (2; 3 for a non-finite loss); any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Callable, List, Optional, Sequence, Tuple

from .errors import UserError

_OVERRIDE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*=")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with usage errors raised as :class:`UserError` (one line, exit 2 via run_cli)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message} (see --help)")


def split_overrides(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """``(other_args, overrides)``: every ``KEY=VALUE`` word that is not an existing path is an
    override, wherever it stands; ``--set`` before them is optional."""
    rest: List[str] = []
    overrides: List[str] = []
    for word in argv:
        if word == "--set":
            continue
        if _OVERRIDE.match(word) and not os.path.exists(word):
            overrides.append(word)
        else:
            rest.append(word)
    return rest, overrides


def parse_with_overrides(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse ``argv`` (default ``sys.argv[1:]``); the overrides land in ``args.overrides``."""
    rest, overrides = split_overrides(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(rest)
    args.overrides = overrides
    return args


def add_config_args(parser: argparse.ArgumentParser, default: Optional[str] = None, *,
                    required: Optional[bool] = None, help: Optional[str] = None) -> None:
    """``--config`` (YAML) plus the documented override syntax (parsed by parse_with_overrides).
    ``required`` defaults to ``default is None``."""
    parser.add_argument("--config", default=default, required=(default is None) if required is None else required,
                        help=help or "YAML config (e.g. src/config/x3d_xs.yaml)")
    parser.epilog = ((parser.epilog + "\n") if parser.epilog else "") + (
        "Config overrides: dotted KEY=VALUE words anywhere on the command line "
        "(optionally after --set), e.g. train.epochs=5 data_loader.train.batch_size=8")


def run_cli(main: Callable[[Optional[Sequence[str]]], int], argv: Optional[Sequence[str]] = None) -> int:
    """Run ``main(argv)``; user errors become one ``error:`` line and their exit code."""
    try:
        return int(main(argv) or 0)
    except UserError as e:
        text = str(e).strip()
        print(f"error: {text.splitlines()[0] if text else type(e).__name__}", file=sys.stderr, flush=True)
        return int(getattr(e, "exit_code", 2))


__all__ = ["ArgumentParser", "split_overrides", "parse_with_overrides", "add_config_args", "run_cli"]
