"""Open every video of a config's data split and report missing, unreadable and too-short files.

    python -m src.tools.check_dataset --config CFG [--split train|eval|both] [--out DIR] [k=v ...]

A video is too short when it has fewer frames than ``data_loader.min_frames`` (0 = the clip's
``num_frames``; not applied to frame folders read with ``pad_mode: loop``, which loop short
clips). Frame-folder data sets are checked per folder: it exists, holds every frame up to its
listed (or highest) number, and its first and last JPEGs decode; a MindRecord file's records are
read from the file. Exit code 0 if every listed file is fine, 1 otherwise; the bad files (with
reasons) are written to ``{out}/check_{split}.txt`` when ``--out`` is given.
"""
from __future__ import annotations

import os
import sys
from typing import Dict, List, Optional, Sequence

from ..cli import ArgumentParser, parse_with_overrides, run_cli
from ..config import ConfigError, add_config_args, config_from_args
from ..data.errors import DataError
from ..data.pipeline import build_dataset


def check_split(cfg, split: str, out: Optional[str] = None, progress: bool = True,
                class_names: Optional[Sequence[str]] = None) -> Dict[str, List[str]]:
    """``{'missing': [...], 'unreadable': ['path: reason', ...], 'too_short': [...], 'class_names': [...]}``;
    ``class_names``: the train split's class list, which the eval split's labels must be in (as in train.py)."""
    from tqdm import tqdm

    ds = build_dataset(cfg, split, output_dir=out, class_names=class_names)
    dl = cfg.data_loader
    min_frames = int(dl.get("min_frames", 0) or 0) or ds.num_frames
    decoder = str(dl.get("decoder", "decord"))
    report: Dict[str, List[str]] = {"missing": list(ds.missing), "unreadable": [], "too_short": []}
    seen = set()
    bar = tqdm(ds.video_paths, desc=f"check {split}", unit="video", disable=None if progress else True)  # terminal only
    for i, path in enumerate(bar):
        if path in seen:  # the video-level protocol lists a video once per window
            continue
        seen.add(path)
        reason = ds.check(i, min_frames, decoder)  # the data set's own reader: video, frame folder or record
        if reason == "frame folder not found":
            report["missing"].append(path)
        elif reason is not None:
            report["too_short" if reason.startswith("too short") else "unreadable"].append(f"{path}: {reason}")
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"check_{split}.txt"), "w", encoding="utf-8") as f:
            for kind, items in report.items():
                f.writelines(f"{kind}\t{item}\n" for item in items)
    report["total"] = [str(len(seen) + len(ds.missing))]
    report["class_names"] = list(ds.class_names)
    return report


def main(argv: Optional[List[str]] = None) -> int:
    p = ArgumentParser(prog="python -m src.tools.check_dataset", description=__doc__.split("\n")[0])
    add_config_args(p)
    p.add_argument("--split", choices=["train", "eval", "both"], default="both")
    p.add_argument("--out", default=None, help="folder for check_<split>.txt and missing_files.txt")
    p.add_argument("--no-progress", action="store_true")
    args = parse_with_overrides(p, argv)
    try:
        cfg = config_from_args(args)
        bad, classes = 0, None
        for split in (["train", "eval"] if args.split == "both" else [args.split]):
            r = check_split(cfg, split, args.out, progress=not args.no_progress, class_names=classes)
            classes = r["class_names"]  # both: the eval split is checked against the train split's classes
            print(f"{split}: {r['total'][0]} listed, {len(r['missing'])} missing, "
                  f"{len(r['unreadable'])} unreadable, {len(r['too_short'])} too short")
            for kind in ("missing", "unreadable", "too_short"):
                for item in r[kind][:20]:
                    print(f"  {kind}: {item}")
                if len(r[kind]) > 20:
                    print(f"  ... {len(r[kind]) - 20} more {kind}")
            bad += len(r["missing"]) + len(r["unreadable"]) + len(r["too_short"])
    except (ConfigError, DataError, KeyError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
