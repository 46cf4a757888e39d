"""CPU benchmarks, one command: ``python -m src.tools.bench model|infer|layers|loader [options]``.

* ``model`` (:mod:`.models`): our networks against the same networks in torch, forward and train step.
* ``infer`` (:mod:`.infer`): X3D-XS latency of the exported MINDIR against onnxruntime and torch.
* ``layers`` (:mod:`.layers`): per-layer and per-op-type time of X3D-XS, the ``Conv3d`` formulations.
* ``loader`` (:mod:`.loader`): clips/s of the data pipelines.
* ``train_step`` (:mod:`.train_step`): the cost of clipping + accumulation (+ EMA) in a train step.
* ``stream`` (:mod:`.stream`): per-frame latency of MoViNet stream (state carried) against torch eager.

All four time with :func:`.harness.time_calls` and measure in worker processes through
:func:`.harness.run_worker`; the torch references they compare with are in :mod:`.torch_ref`
(torch itself is optional: ``pip install torch==2.13.0``). The older commands
``python -m src.tools.benchmark`` / ``bench_infer`` / ``layer_profile`` / ``bench_loader`` are
aliases. This module imports no benchmark until one is chosen (workers start fast).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType
from typing import Callable, List, Optional, Sequence, Tuple

from ...errors import UserError

PROG = "python -m src.tools.bench"
COMMANDS = {"model": "models", "infer": "infer", "layers": "layers", "loader": "loader", "train_step": "train_step",
            "stream": "stream"}
USAGE = (f"usage: {PROG} {{{','.join(COMMANDS)}}} [options]  (--help after a benchmark lists its options)\n\n"
         + "\n".join(f"  {name:8s}{doc}" for name, doc in (
             ("model", "our networks against the same networks in torch: forward b1/b8, train step"),
             ("infer", "X3D-XS latency: exported MINDIR against onnxruntime and torch eager"),
             ("layers", "X3D-XS per layer (--ops: per op type; --conv: the Conv3d formulations)"),
             ("loader", "clips/s of the train and eval data pipelines"),
             ("train_step", "X3D-XS train step: plain against clipping + accumulation (+ EMA)"),
             ("stream", "MoViNet stream: per-frame latency, state carried, against torch eager"))))


def command(argv: Optional[Sequence[str]] = None) -> Tuple[str, ModuleType, List[str]]:
    """The benchmark ``argv`` names, its module and the rest of ``argv`` (its options)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        raise SystemExit(0)
    if not argv or argv[0] not in COMMANDS:
        got = f"got {argv[0]!r}" if argv else "got nothing"
        raise UserError(f"{PROG}: expected a benchmark, one of {', '.join(COMMANDS)}; {got} (see --help)")
    return argv[0], importlib.import_module(f"{__name__}.{COMMANDS[argv[0]]}"), argv[1:]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The chosen benchmark's parsed options (``args.command`` names it)."""
    name, module, rest = command(argv)
    args = module.parse_args(rest)
    args.command = name
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmark ``argv[0]`` names with the rest of ``argv``."""
    _, module, rest = command(argv)
    return int(module.main(rest) or 0)


def alias(translate: Callable[[List[str]], List[str]]) -> Tuple[Callable[..., argparse.Namespace], Callable[..., int]]:
    """``(parse_args, main)`` of an old command name: its arguments, mapped by ``translate`` to
    ``python -m src.tools.bench`` arguments, run here."""
    def alias_parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
        return parse_args(translate(list(sys.argv[1:] if argv is None else argv)))

    def alias_main(argv: Optional[Sequence[str]] = None) -> int:
        return main(translate(list(sys.argv[1:] if argv is None else argv)))
    return alias_parse_args, alias_main


__all__ = ["COMMANDS", "command", "parse_args", "main", "alias"]
