"""Tiny video data sets and configs for end-to-end training tests."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
import yaml

from .video import encode_video

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_tiny_dataset(root: str, *, num_classes: int = 3, per_class: int = 4, num_val: int = 1,
                      frames: int = 8, size: int = 32, seed: int = 0) -> str:
    """Class ``k`` videos: a square moving in direction k (easy to learn); VideoList files."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    lines: Dict[str, List[str]] = {"train": [], "val": []}
    dirs = [(0, 2), (0, -2), (2, 0), (-2, 0)]
    for k in range(num_classes):
        for i in range(per_class + num_val):
            split = "train" if i < per_class else "val"
            video = np.full((frames, size, size, 3), 40, np.uint8)
            y, x = rng.integers(8, size - 8, 2)
            for t in range(frames):
                yy, xx = (y + dirs[k][0] * t) % (size - 6), (x + dirs[k][1] * t) % (size - 6)
                video[t, yy:yy + 6, xx:xx + 6] = (220, 200, 60)
            rel = f"{split}/c{k}_{i}.mp4"
            os.makedirs(os.path.join(root, split), exist_ok=True)
            encode_video(os.path.join(root, rel), video)
            lines[split].append(f"{rel} {k}")
    for split in lines:
        with open(os.path.join(root, f"{split}.txt"), "w") as f:
            f.write("\n".join(lines[split]) + "\n")
    return root


def tiny_config(path: str, data_root: str, *, num_classes: int = 3, batch_size: int = 2, epochs: int = 3,
                extra: Optional[dict] = None) -> str:
    """A config for a reduced X3D on 4 x 32 x 32 clips with deterministic transforms."""
    ops = [{"type": "ShortSideScale", "size": 32}, {"type": "SpatialCrops", "size": 32, "num_crops": 1},
           {"type": "Rescale"}, {"type": "Normalize", "mean": [0.45] * 3, "std": [0.225] * 3}, {"type": "ToCTHW"}]
    ds = {"type": "VideoList", "root": data_root, "num_frames": 4, "sampling_rate": 2}
    cfg = {
        "context": {"device_target": "CPU", "seed": 0},
        "model": {"type": "x3d_xs", "num_classes": num_classes, "num_frames": 4, "crop_size": 32,
                  "width_factor": 0.5, "depth_factor": 0.5, "head_dim": 32, "dropout_rate": 0.0},
        "learning_rate": {"type": "cosine_warmup", "base_lr": 0.05, "warmup_epochs": 1.0,
                          "warmup_start_lr": 0.01, "eta_min": 0.0},
        "train": {"epochs": epochs, "ckpt_interval": 1, "keep_checkpoint_max": 10, "eval_interval": 1,
                  "log_interval": 1, "progress_bar": False},
        "data_loader": {
            "train": {"dataset": dict(ds, ann_file="train.txt"), "map": {"operations": ops},
                      "batch_size": batch_size, "num_parallel_workers": 1},
            "eval": {"dataset": dict(ds, ann_file="val.txt", num_clips=1), "map": {"operations": ops},
                     "batch_size": batch_size, "num_parallel_workers": 1},
        },
    }
    for dotted, value in (extra or {}).items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


def run_py(args: Sequence[str], *, timeout: int = 600, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Run ``python ARGS`` from the repository root, capturing text output."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=full_env)


def tiny_eval_model(root, *, num_val: int, eval_cfg: dict):
    """``(cfg_path, net)``: a tiny data set under ``root/data`` (3 classes, one train video each),
    a config whose ``eval`` section is ``eval_cfg``, and the CPU model it builds (for eval.py tests
    that write their own checkpoint)."""
    import mindspore as ms
    from src.config import load_config
    from src.models import build_model

    data = make_tiny_dataset(str(root / "data"), num_classes=3, per_class=1, num_val=num_val)
    cfg = tiny_config(str(root / "cfg.yaml"), data, extra={"eval": eval_cfg})
    ms.set_device("CPU")
    return cfg, build_model(load_config(cfg).model)
