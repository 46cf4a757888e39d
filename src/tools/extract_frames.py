"""Decode every video of a tree into JPEG frame folders and write the raw-frame list.

    python -m src.tools.extract_frames SRC_DIR DST_DIR [--short-side 128] [--fps N] [--workers N]
        [--quality 90] [--filename-tmpl img_{:05d}.jpg] [--list VIDEO_LIST] [--out-list rawframes.txt]

Data flow::

    SRC_DIR/<class>/<name>.mp4  (or the ``path label`` lines of --list, relative to SRC_DIR)
      -> decode (src/data/decode.py, one pass: decord, PyAV fallback), every frame or --fps N per second
      -> resize to --short-side (0: keep; the transforms' short-side rule), JPEG --quality
      -> DST_DIR/<class>/<name>/img_00001.jpg ...     (written to <name>.part/, renamed when done)
      -> DST_DIR/rawframes.txt  "<class>/<name> <total_frames> <label>"  (RawFrameList, root DST_DIR)
         DST_DIR/label_map.json, DST_DIR/extract_errors.txt (unreadable videos: path<TAB>reason)

Labels are the sorted class sub-folders of SRC_DIR (or those of --list). A rerun resumes: videos
whose frame folder exists are not decoded again (their frames are counted from the folder
listing), unfinished ``.part`` folders are redone. Exit code 0, 1 if some videos were unreadable,
2 for a usage error.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..cli import ArgumentParser, run_cli
from ..data.datasets import VIDEO_EXTENSIONS, _subdirs, _videos_under, _warn
from ..data.decode import BACKENDS, FrameIterator, one_line
from ..data.errors import DataError
from ..data.readers import FrameTemplate
from ..data.transforms import scale_short_side

LIST_NAME = "rawframes.txt"
ERRORS_NAME = "extract_errors.txt"


def _keep(k: np.ndarray, src_fps: float, fps: Optional[float]) -> np.ndarray:
    """Which source frames ``k`` to keep for ``fps`` frames per second: the first frame of every
    1/fps interval (all when fps is unset, unknown or not below the video's)."""
    k = np.asarray(k, np.int64)
    if not fps or not src_fps or fps >= src_fps:
        return np.ones(k.shape, bool)
    r = float(fps) / float(src_fps)
    return (k == 0) | (np.floor(k * r + 1e-9) > np.floor((k - 1) * r + 1e-9))


def iter_video(path: str, fps: Optional[float] = None, backend: str = "decord") -> Iterator[np.ndarray]:
    """The (H, W, 3) uint8 RGB frames of ``path`` through one backend (decord: chunks of
    random access; pyav: streaming), subsampled to ``fps`` per second if that is lower."""
    with FrameIterator(path, backend, select=lambda k, src_fps: _keep(k, src_fps, fps)) as frames:
        yield from frames


def _resize(frame: np.ndarray, short_side: int) -> np.ndarray:
    """``frame`` with its short side ``short_side`` (0: as it is)."""
    return scale_short_side(frame[None], short_side)[0] if short_side else frame


def extract_video(job: Tuple[str, str, int, Optional[float], int, str, str]) -> Tuple[str, int, Optional[str]]:
    """Worker: write the frames of one video to ``out`` (via ``out.part``, renamed when complete),
    with ``decoder`` first and the other backend as the fallback. Returns (out, frames, None) or
    (out, 0, reason)."""
    from PIL import Image

    src, out, short_side, fps, quality, tmpl, decoder = job
    part = out + ".part"
    errors = []
    if not os.path.isfile(src) or os.path.getsize(src) == 0:
        return out, 0, "file not found" if not os.path.isfile(src) else "empty file (0 bytes)"
    for backend in [decoder] + [b for b in BACKENDS if b != decoder]:
        shutil.rmtree(part, ignore_errors=True)
        os.makedirs(part)
        n = 0
        try:
            for frame in iter_video(src, fps, backend):
                Image.fromarray(_resize(frame, short_side)).save(os.path.join(part, tmpl.format(n + 1)),
                                                                 quality=quality)
                n += 1
        except Exception as e:  # decoders raise many unrelated types
            errors.append(f"{backend}: {one_line(e)}")
            continue
        if n == 0:
            errors.append(f"{backend}: no frames decoded")
            continue
        os.replace(part, out)
        return out, n, None
    shutil.rmtree(part, ignore_errors=True)
    return out, 0, "cannot decode: " + "; ".join(errors)


def count_frames(folder: str, tmpl: str) -> int:
    """Frames of a finished folder, from its listing (no image is opened)."""
    template = FrameTemplate(tmpl, 1, "--filename-tmpl")
    return sum(1 for f in os.listdir(folder) if template.matches(f))


def _videos(src: str, list_file: Optional[str]) -> Tuple[List[Tuple[str, int]], Optional[List[str]]]:
    """[(path relative to src, label)] and the class names (None with --list)."""
    if list_file:
        rows = []
        with open(list_file, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip() or line.startswith("#"):
                    continue
                parts = line.strip().rsplit(None, 1)
                if len(parts) != 2 or not parts[1].isdigit():
                    raise DataError(f"{list_file}:{lineno}: expected 'relative/path label', got {line.strip()!r}")
                rows.append((parts[0], int(parts[1])))
        if not rows:
            raise DataError(f"{list_file}: no videos listed")
        return rows, None
    classes = _subdirs(src)
    rows = [(os.path.relpath(p, src), label) for label, c in enumerate(classes)
            for p in _videos_under(os.path.join(src, c), VIDEO_EXTENSIONS)]
    if not rows:
        raise DataError(f"{src}: no video files ({', '.join(VIDEO_EXTENSIONS[:4])}, ...) in class sub-folders "
                        f"(or pass --list)")
    used = {label for _, label in rows}
    empty = [f"{c!r} (class {i})" for i, c in enumerate(classes) if i not in used]
    if empty:  # kept in label_map.json, so the other classes keep the indices of the sorted names
        _warn(f"{src}: {len(empty)} class folder(s) without video files: {', '.join(empty)}; a class keeps its "
              f"index (the place of its name in the class list), so the other indices do not shift")
    return rows, classes


def extract_frames(src: str, dst: str, *, short_side: int = 0, fps: Optional[float] = None,
                   workers: int = 1, quality: int = 90, filename_tmpl: str = "img_{:05d}.jpg",
                   list_file: Optional[str] = None, out_list: str = LIST_NAME, decoder: str = "decord",
                   progress: bool = True) -> dict:
    """Extract every video of ``src`` (see the module doc); returns ``{'extracted', 'skipped',
    'errors': [(path, reason)], 'list': path, 'frames': total}``."""
    from tqdm import tqdm

    from ..data.labels import save_label_map

    if not os.path.isdir(src):
        raise DataError(f"{src}: source folder not found")
    FrameTemplate(filename_tmpl, 1, "--filename-tmpl")  # checks the template
    if not 1 <= quality <= 100:
        raise DataError(f"--quality: expected 1..100, got {quality}")
    rows, classes = _videos(src, list_file)
    outs = [os.path.splitext(rel)[0] for rel, _ in rows]
    seen = {}
    for (rel, _), o in zip(rows, outs):
        if o in seen:
            raise DataError(f"{rel} and {seen[o]} would share the frame folder {o}/; rename one")
        seen[o] = rel
    os.makedirs(dst, exist_ok=True)
    todo = [(os.path.join(src, rel), os.path.join(dst, o), int(short_side), fps, int(quality), filename_tmpl, decoder)
            for (rel, _), o in zip(rows, outs) if not os.path.isdir(os.path.join(dst, o))]
    for job in todo:
        os.makedirs(os.path.dirname(job[1]), exist_ok=True)
    results = {}
    bar = tqdm(total=len(todo), desc="extract", unit="video", disable=None if progress else True)
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(todo))) as pool:
            for out, n, err in pool.imap_unordered(extract_video, todo):
                results[out] = (n, err)
                bar.update(1)
    else:
        for job in todo:
            out, n, err = extract_video(job)
            results[out] = (n, err)
            bar.update(1)
    bar.close()
    lines, errors, total = [], [], 0
    for (rel, label), o in zip(rows, outs):
        folder = os.path.join(dst, o)
        n, err = results.get(folder, (None, None))
        if err is not None:
            errors.append((os.path.join(src, rel), err))
            continue
        if n is None:  # finished by an earlier run
            n = count_frames(folder, filename_tmpl)
        total += n
        lines.append(f"{o.replace(os.sep, '/')} {n} {label}")
    list_path = os.path.join(dst, out_list)
    with open(list_path, "w", encoding="utf-8") as f:
        f.write("".join(l + "\n" for l in lines))
    err_path = os.path.join(dst, ERRORS_NAME)
    with open(err_path, "w", encoding="utf-8") as f:
        f.writelines(f"{p}\t{r}\n" for p, r in errors)
    if classes is not None:
        save_label_map(classes, os.path.join(dst, "label_map.json"))
    elif list_file and os.path.isfile(os.path.join(src, "label_map.json")):
        shutil.copy(os.path.join(src, "label_map.json"), os.path.join(dst, "label_map.json"))
    return {"extracted": len(todo) - sum(1 for n, e in results.values() if e is not None),
            "skipped": len(rows) - len(todo), "errors": errors, "list": list_path, "frames": total,
            "errors_file": err_path}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = ArgumentParser(prog="python -m src.tools.extract_frames", description=__doc__.split("\n")[0])
    p.add_argument("src_dir", help="video tree: class sub-folders (or the root of --list's paths)")
    p.add_argument("dst_dir", help="output: frame folders, the raw-frame list, label_map.json")
    p.add_argument("--short-side", type=int, default=0, help="resize frames to this short side (0: keep)")
    p.add_argument("--fps", type=float, default=None, help="keep N frames per second (default: every frame)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="decoding processes")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality 1..100")
    p.add_argument("--filename-tmpl", default="img_{:05d}.jpg", help="frame file names, numbered from 1")
    p.add_argument("--list", default=None, help="VideoList file ('path label', relative to SRC_DIR) to extract")
    p.add_argument("--out-list", default=LIST_NAME, help="raw-frame list name inside DST_DIR")
    p.add_argument("--decoder", choices=["decord", "pyav"], default="decord")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.short_side < 0 or args.workers < 1 or (args.fps is not None and args.fps <= 0):
        print("error: --short-side must be >= 0, --workers >= 1 and --fps > 0", file=sys.stderr)
        return 2
    t0 = time.time()
    try:
        r = extract_frames(args.src_dir, args.dst_dir, short_side=args.short_side, fps=args.fps,
                           workers=args.workers, quality=args.quality, filename_tmpl=args.filename_tmpl,
                           list_file=args.list, out_list=args.out_list, decoder=args.decoder,
                           progress=not args.no_progress)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"extracted {r['extracted']} videos, {r['skipped']} already done, {len(r['errors'])} unreadable; "
          f"{r['frames']} frames listed in {r['list']} ({time.time() - t0:.1f} s)")
    for path, reason in r["errors"][:20]:
        print(f"  unreadable: {path}: {reason}")
    if r["errors"]:
        print(f"  (all in {r['errors_file']})")
    return 1 if r["errors"] else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
