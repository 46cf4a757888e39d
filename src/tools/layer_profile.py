"""Alias of ``python -m src.tools.bench layers``: the layer benchmark (per layer; --ops, --conv), see ``src/tools/bench/``."""
import sys

from ..cli import run_cli
from .bench import alias

parse_args, main = alias(lambda argv: ["layers", *argv])

if __name__ == "__main__":
    sys.exit(run_cli(main))
