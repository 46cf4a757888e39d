"""Write a VideoList file (``relative/path label`` lines) and its label map from a class-folder tree.

    python -m src.tools.build_list DATA_DIR OUT.txt [--root ROOT] [--label-map PATH]

Classes are the sorted sub-folder names of DATA_DIR; paths are written relative to ``--root``
(default: the folder of OUT.txt), which becomes the VideoList ``root``. The label map goes to
``--label-map`` (default ``label_map.json`` next to OUT.txt) unless it already exists with the
same classes.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from ..data.datasets import VIDEO_EXTENSIONS, _subdirs, _videos_under
from ..data.errors import DataError
from ..data.labels import load_label_map, save_label_map


def build_list(data_dir: str, out: str, root: Optional[str] = None,
               label_map: Optional[str] = None) -> List[str]:
    """Write ``out`` (and the label map); returns the class names."""
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: folder not found")
    classes = _subdirs(data_dir)
    if not classes:
        raise DataError(f"{data_dir}: no class sub-folders")
    root = root if root is not None else (os.path.dirname(os.path.abspath(out)))
    label_map = label_map or os.path.join(os.path.dirname(os.path.abspath(out)), "label_map.json")
    if os.path.isfile(label_map):
        known = load_label_map(label_map)
        if known != classes:
            raise DataError(f"{label_map}: existing label map has classes {known[:5]}..., the tree "
                            f"{classes[:5]}...; pass --label-map NEW.json")
    lines = []
    for label, cls in enumerate(classes):
        for path in _videos_under(os.path.join(data_dir, cls), VIDEO_EXTENSIONS):
            rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root)).replace(os.sep, "/")
            lines.append(f"{rel} {label}")
    if not lines:
        raise DataError(f"{data_dir}: no video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...) in class folders")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    save_label_map(classes, label_map)
    return classes


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m src.tools.build_list",
                                description="VideoList file from a class-folder tree.")
    p.add_argument("data_dir")
    p.add_argument("out")
    p.add_argument("--root", default=None, help="paths are relative to this (default: OUT's folder)")
    p.add_argument("--label-map", default=None, help="label map path (default: OUT's folder/label_map.json)")
    args = p.parse_args(argv)
    try:
        classes = build_list(args.data_dir, args.out, args.root, args.label_map)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with open(args.out, encoding="utf-8") as f:
        n = sum(1 for _ in f)
    print(f"wrote {n} videos of {len(classes)} classes to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
