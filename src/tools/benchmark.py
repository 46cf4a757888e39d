"""Alias of ``python -m src.tools.bench model`` (the model benchmark, see ``src/tools/bench/``);
``--infer``, ``--layers`` and ``--ops`` select the ``infer`` and ``layers`` benchmarks as before."""
from __future__ import annotations

import sys
from typing import List

from ..cli import run_cli
from .bench import alias


def translate(argv: List[str]) -> List[str]:
    """This alias's arguments as ``python -m src.tools.bench`` arguments."""
    for flag, name in (("--infer", "infer"), ("--layers", "layers")):
        if flag in argv:
            return [name] + [a for a in argv if a != flag]
    return ["layers" if "--ops" in argv else "model"] + argv


parse_args, main = alias(translate)

if __name__ == "__main__":
    sys.exit(run_cli(main))
