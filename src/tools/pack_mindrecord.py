"""Decode a config's data split once into a MindRecord file of JPEG frames.

    python -m src.tools.pack_mindrecord --config CFG --split train --out data/train.mindrecord
        [--short-side 128] [--quality 90] [k=v ...]

Then train from it with the data set ``{type: MindRecordVideo, file: data/train.mindrecord,
num_frames: ..., sampling_rate: ...}``. Unreadable videos are skipped and listed.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

from ..cli import ArgumentParser, add_config_args, parse_with_overrides, run_cli
from ..config import config_from_args


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m src.tools.pack_mindrecord", description=__doc__.split("\n")[0])
    add_config_args(p)
    p.add_argument("--split", choices=["train", "eval"], required=True)
    p.add_argument("--out", required=True, help="output .mindrecord file (an index .json is written next to it)")
    p.add_argument("--short-side", type=int, default=None, help="resize frames to this short side first")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality")
    p.add_argument("--no-progress", action="store_true")
    return parse_with_overrides(p, argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from tqdm import tqdm

    cfg = config_from_args(args)  # imports MindSpore before the data modules (decord order)
    from ..data.mindrecord import pack_mindrecord
    from ..data.pipeline import build_dataset
    ds = build_dataset(cfg, args.split)
    t0 = time.time()
    summary = pack_mindrecord(ds, args.out, short_side=args.short_side, quality=args.quality,
                              decoder=str(cfg.data_loader.decoder),
                              progress=None if args.no_progress else
                              (lambda it: tqdm(it, desc="pack", unit="video", disable=None)))  # terminal only
    print(f"packed {summary['videos']} videos ({summary['bytes'] / 2**20:.1f} MiB) to {args.out} "
          f"in {time.time() - t0:.1f} s; {len(summary['bad'])} skipped")
    for b in summary["bad"]:
        print(f"  skipped: {b}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
