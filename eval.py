"""Multi-view evaluation of a checkpoint.

    python eval.py --config CFG --ckpt PATH [--ema] [--output DIR] [--device CPU|GPU|Ascend] [KEY=VALUE ...]

Views: ``eval.num_clips`` clips spaced uniformly over each video x ``eval.num_crops`` crops
(1 = centre; 3 = left/centre/right, or top/centre/bottom for portrait video) of
``eval.crop_size`` from frames resized to short side ``eval.short_side``; 10 x 3 = the
references' "30-view" test. The ``eval`` section is eval.py's own; a null key there takes the
``infer`` value (the section that drove eval.py before; a deprecation note says when a config
relies on that, see ``src/config/sections.py``). Short side and crop left null everywhere are the
model record's (``src/config/geometry.py``: ``resolve_data_config``). Each view's output is made class probabilities (X3D's head already
returns them; the Efficient-3DCNNs logits get a softmax per view, as their test.py does) and the
views are averaged per video. Writes ``eval_results.json`` (metrics, per-class accuracy, confusion matrix,
each video's top-5) and ``confusion_matrix.png`` to the output folder.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from src.cli import ArgumentParser, add_config_args, parse_with_overrides, run_cli
from src.config import config_from_args


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(prog="eval.py", description="Multi-view evaluation of a checkpoint.")
    add_config_args(p)
    p.add_argument("--ckpt", required=True, help="checkpoint to evaluate (training or converted)")
    p.add_argument("--output", default=None, help="folder for eval_results.json and confusion_matrix.png "
                                                  "(default: <train.output_dir>/eval)")
    p.add_argument("--device", default=None, help="CPU | GPU | Ascend (default: context.device_target)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--ema", action="store_true", help="evaluate the EMA weights of a training checkpoint "
                                                      "(trained with train.ema=true) instead of the raw ones")
    p.add_argument("--video-level", action="store_true",
                   help="the Efficient-3DCNNs video accuracy: every consecutive non-overlapping clip of each "
                        "video (centre crop), probabilities averaged per video (frame folders and video files; "
                        "same as eval.video_level=true)")
    return parse_with_overrides(p, argv)


def main(argv: Optional[List[str]] = None) -> int:
    return run(parse_args(argv))


def run(args: argparse.Namespace) -> int:
    import mindspore as ms  # noqa: F401  (before src.data: decord must load after MindSpore)
    from src.context import init_context
    from src.data import create_loader
    from src.engine.evaluate import score_loader
    from src.engine.inference import load_inference_model
    from src.engine.metrics import classification_metrics
    from src.outputs import remove_partials

    notes: List[str] = []
    cfg = config_from_args(args, eval_notes=notes)
    for note in notes:  # eval.* taken from infer.* (deprecated), or infer.* overrides not used
        print(f"note: {note}", file=sys.stderr, flush=True)
    out = args.output or os.path.join(cfg.train.output_dir, "eval")
    os.makedirs(out, exist_ok=True)
    remove_partials(out)  # what an earlier run that was killed or hit a full disk left half-written
    init_context(cfg.context, args.device)

    ev = cfg.eval  # eval.py's own section (null keys were filled from infer when the config was read)
    video_level = bool(args.video_level or ev.video_level)
    num_clips, num_crops = int(ev.num_clips), int(ev.num_crops)
    if video_level:  # consecutive windows of each video, one centre crop each (the reference's test)
        from src.data import with_video_protocol
        cfg.data_loader.eval.dataset = with_video_protocol(cfg.data_loader.eval.dataset)
        num_crops = 1
    # eval mode, BatchNorm folded (eval.fold_bn); its data config: the model record's test clip
    # with the config's values over it (eval.short_side / eval.crop_size)
    model = load_inference_model(cfg, ckpt=args.ckpt, fold_bn=bool(ev.fold_bn), batch_size=int(ev.batch_size),
                                 section="eval", ema=args.ema)
    short_side, crop_size = model.data_config.short_side, model.data_config.crop_size
    # one class list per run: the checkpoint's (a training checkpoint's label map), so the data's
    # labels are indices of the network's outputs; a label it lacks is an error naming the row.
    # Converted weights carry none: the data set's own list
    loader = create_loader(cfg, "eval", output_dir=out, num_clips=None if video_level else num_clips,
                           num_crops=num_crops, short_side=short_side, crop_size=crop_size,
                           batch_size=int(ev.batch_size), class_names=model.class_names or None)
    names = list(loader.class_names)

    which = " (EMA weights)" if args.ema else ""
    if video_level:
        print(f"evaluating {args.ckpt}{which} video-level: {loader.num_videos} consecutive clips (centre crop "
              f"{crop_size} of short side {short_side}), averaged per video", flush=True)
    else:
        print(f"evaluating {args.ckpt}{which} on {loader.num_videos} videos x {loader.views_per_video} views "
              f"({num_clips} clips x {num_crops} crops, short side {short_side}, crop {crop_size})",
              flush=True)
    t0 = time.perf_counter()
    agg = score_loader(model.net, loader, eval_output=model.eval_output, progress=not args.no_progress, desc="eval")
    seconds = time.perf_counter() - t0
    video_ids, scores, labels = agg.result()
    paths, num_videos = loader.video_paths, loader.num_videos
    if video_level:  # window scores -> videos
        from src.data import windows_to_videos
        plan = loader.video_dataset.video_level
        video_ids, scores, labels = windows_to_videos(video_ids, scores, labels, plan.window_video)
        paths = plan.video_paths
        num_videos = len(paths)
    metrics = classification_metrics(scores, labels, loader.num_classes, names)
    scored = set(int(v) for v in video_ids)
    failed = [p for i, p in enumerate(paths) if i not in scored]  # no views: not decodable
    reasons = _bad_reasons(loader.bad_files_path)

    results: Dict[str, Any] = {
        "checkpoint": os.path.abspath(args.ckpt),
        "weights": "ema" if args.ema else "raw",
        "config": os.path.abspath(args.config),
        "views": {"num_clips": "all consecutive" if video_level else num_clips, "num_crops": int(num_crops),
                  "short_side": int(short_side), "crop_size": int(crop_size)},
        "protocol": "video-level (consecutive clips)" if video_level else "multi-view",
        **metrics,  # its num_videos counts the scored videos; the listed count follows
        "num_videos": int(num_videos), "num_videos_scored": int(len(video_ids)),
        "failed_videos": [{"video": p, "reason": reasons.get(p, "not decodable")} for p in failed],
        "missing_videos": int(len(loader.missing_files)), "seconds": round(seconds, 2),
        "class_names": names,
        "videos": _top5(video_ids, scores, labels, paths, names),
    }
    _write_json(results, os.path.join(out, "eval_results.json"))
    plot_confusion(np.asarray(metrics["confusion_matrix"]), names, os.path.join(out, "confusion_matrix.png"))

    print(f"top-1: {100 * metrics['top1']:.2f}%  top-5: {100 * metrics['top5']:.2f}%  "
          f"mean class accuracy: {100 * metrics['mean_class_accuracy']:.2f}%  "
          f"over {len(video_ids)} scored videos ({seconds:.1f} s)")
    if failed:
        where = f", reasons in {loader.bad_files_path}" if os.path.isfile(loader.bad_files_path) else ""
        print(f"{len(failed)} of {num_videos} videos could not be decoded and are not scored "
              f"(failed_videos in eval_results.json{where})")
    worst = sorted(((a, n) for n, a in metrics["per_class_accuracy"].items() if a is not None))[:5]
    print("lowest per-class accuracy: " + ", ".join(f"{n} {100 * a:.1f}%" for a, n in worst))
    print(f"wrote {os.path.join(out, 'eval_results.json')} and {os.path.join(out, 'confusion_matrix.png')}")
    return 0


def _top5(video_ids, scores, labels, paths: Sequence[str], names: Sequence[str]) -> List[Dict[str, Any]]:
    rows = []
    for vid, s, y in zip(video_ids, scores, labels):
        top = np.argsort(-s, kind="stable")[:5]
        rows.append({"video": paths[vid], "label": int(y), "label_name": names[y],
                     "top5": [{"label": int(k), "name": names[k], "prob": round(float(s[k]), 6)} for k in top]})
    return rows


def _bad_reasons(path: str) -> Dict[str, str]:
    """``bad_files.txt`` (``path<TAB>reason`` lines) as a dict."""
    out: Dict[str, str] = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                name, _, reason = line.rstrip("\n").partition("\t")
                out.setdefault(name, reason)
    return out


def _write_json(obj: Any, path: str) -> None:
    """Atomically (a full disk: one-line error, no partial file left)."""
    from src.outputs import atomic_write
    atomic_write(path, json.dumps(obj, indent=1))


def plot_confusion(cm: np.ndarray, names: Sequence[str], path: str) -> None:
    """Row-normalised confusion matrix (true class per row) as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(names)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = min(4 + 0.35 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if n <= 60:
        ax.set_xticks(range(n), names, rotation=90, fontsize=8)
        ax.set_yticks(range(n), names, fontsize=8)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center",
                            color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (rows normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    from src.outputs import atomic_write
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80))
    finally:
        plt.close(fig)


if __name__ == "__main__":
    sys.exit(run_cli(main))
