"""Alias of ``python -m src.tools.bench infer``: the inference benchmark, see ``src/tools/bench/``."""
import sys

from ..cli import run_cli
from .bench import alias

parse_args, main = alias(lambda argv: ["infer", *argv])

if __name__ == "__main__":
    sys.exit(run_cli(main))
