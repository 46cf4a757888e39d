"""Print a config's model size: ``params: N`` (trainable) and ``gflops: X`` (one clip).

GFLOPs are multiply-adds counted analytically per layer (convolutions, linear layers and 2 per
BatchNorm output element, the fvcore convention of the published X3D figures), at the config's
train crop and clip length unless ``--crop`` / ``--frames`` say otherwise.

    python -m src.tools.model_info --config src/config/x3d_xs.yaml [--crop 182] [KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ..cli import ArgumentParser, add_config_args, parse_with_overrides, run_cli
from ..config import config_from_args


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m src.tools.model_info", description=__doc__.split("\n")[0])
    add_config_args(parser)
    parser.add_argument("--crop", type=int, default=None, help="spatial size (default: the model's train crop)")
    parser.add_argument("--frames", type=int, default=None, help="clip length (default: the model's)")
    return parse_with_overrides(parser, argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    cfg = config_from_args(args)
    import mindspore as ms
    ms.set_device("CPU")  # counting only: no kernels run
    from ..models import build_model, count_params
    net = build_model(cfg.model)
    c = net.pretrained_cfg
    crop = args.crop or c.crop_size
    frames = args.frames or c.num_frames
    print(f"model: {cfg.model.type}")
    print(f"input: 3x{frames}x{crop}x{crop}")
    print(f"params: {count_params(net)}")
    print(f"gflops: {net.flops((3, frames, crop, crop)) / 1e9:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
