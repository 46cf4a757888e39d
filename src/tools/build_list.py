"""Write a VideoList file (``relative/path label`` lines) and its label map from a class-folder tree,
or with ``--rawframes`` a RawFrameList file (``frame_dir total_frames label``) from a tree of
frame folders (``DATA_DIR/<class>/.../<clip>/img_00001.jpg``).

    python -m src.tools.build_list DATA_DIR OUT.txt [--root ROOT] [--label-map PATH] [--rawframes]

Classes are the sorted sub-folder names of DATA_DIR; paths are written relative to ``--root``
(default: the folder of OUT.txt), which becomes the VideoList ``root``. The label map goes to
``--label-map`` (default ``label_map.json`` next to OUT.txt) unless it already exists with the
same classes. A frame folder is any folder holding image files (.jpg/.jpeg/.png);
``total_frames`` is their count, from the folder listing (no image is opened).
"""
from __future__ import annotations

import os
import sys
from typing import List, Optional, Tuple

from ..cli import ArgumentParser, run_cli
from ..data.datasets import VIDEO_EXTENSIONS, _subdirs, _videos_under, _warn
from ..data.errors import DataError
from ..data.labels import load_label_map, save_label_map


def _frame_folders_under(path: str) -> List[Tuple[str, int]]:
    """(folder, image count) of every folder under ``path`` that holds image files, sorted."""
    from ..data.rawframes import IMAGE_EXTENSIONS

    out = []
    for dirpath, dirnames, files in os.walk(path):
        dirnames.sort()
        n = sum(1 for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
        if n:
            out.append((dirpath, n))
    return out


def build_list(data_dir: str, out: str, root: Optional[str] = None,
               label_map: Optional[str] = None, rawframes: bool = False) -> List[str]:
    """Write ``out`` (and the label map); returns the class names. ``rawframes``: list frame
    folders with their frame counts instead of video files."""
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
    lines, empty = [], []
    for label, cls in enumerate(classes):
        if rawframes:
            items = _frame_folders_under(os.path.join(data_dir, cls))
        else:
            items = [(p, None) for p in _videos_under(os.path.join(data_dir, cls), VIDEO_EXTENSIONS)]
        if not items:
            empty.append(f"{cls!r} (class {label})")
        for path, count in items:
            rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root)).replace(os.sep, "/")
            lines.append(f"{rel} {label}" if count is None else f"{rel} {count} {label}")
    if not lines:
        what = "frame folders (with .jpg/.png files)" if rawframes else \
            f"video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...)"
        raise DataError(f"{data_dir}: no {what} in class folders")
    if empty:  # kept in the label map, so the other classes keep the indices of the sorted names
        _warn(f"{data_dir}: {len(empty)} class folder(s) without {'frame folders' if rawframes else 'video files'}: "
              f"{', '.join(empty)}; a class keeps its index (the place of its name in the class list), "
              f"so the other indices do not shift")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    save_label_map(classes, label_map)
    return classes


def main(argv: Optional[List[str]] = None) -> int:
    p = ArgumentParser(prog="python -m src.tools.build_list",
                       description="VideoList (or --rawframes RawFrameList) file from a class-folder tree.")
    p.add_argument("data_dir")
    p.add_argument("out")
    p.add_argument("--root", default=None, help="paths are relative to this (default: OUT's folder)")
    p.add_argument("--label-map", default=None, help="label map path (default: OUT's folder/label_map.json)")
    p.add_argument("--rawframes", action="store_true",
                   help="list frame folders as 'frame_dir total_frames label' (RawFrameList) instead of videos")
    args = p.parse_args(argv)
    try:
        classes = build_list(args.data_dir, args.out, args.root, args.label_map, args.rawframes)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with open(args.out, encoding="utf-8") as f:
        n = sum(1 for _ in f)
    print(f"wrote {n} {'frame folders' if args.rawframes else 'videos'} of {len(classes)} classes to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
