"""Alias of ``python -m src.tools.bench loader``: the loader benchmark, see ``src/tools/bench/``."""
import sys

from ..cli import run_cli
from .bench import alias

parse_args, main = alias(lambda argv: ["loader", *argv])

if __name__ == "__main__":
    sys.exit(run_cli(main))
