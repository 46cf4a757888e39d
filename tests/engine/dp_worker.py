"""msrun worker for the data-parallel test: the training engine's pieces, N steps, then this rank's
initial and final trainable parameters saved to OUT/rank{R}_{init,final}.npz.

    msrun --worker_num=2 --local_worker_num=2 ... tests/engine/dp_worker.py CONFIG OUT STEPS [K]

K: train.accumulate_steps (default 1); STEPS counts optimizer steps (K batches each).
"""
import os
import sys

import numpy as np  # noqa: E402
import mindspore as ms  # noqa: E402,F401

from src.config import load_config  # noqa: E402
from src.context import init_context, init_distributed  # noqa: E402
from src.data import create_loader  # noqa: E402
from src.engine.trainer import TrainStep  # noqa: E402
from src.models import build_model  # noqa: E402
from src.registry import LOSSES, OPTIMIZERS, build_from_cfg  # noqa: E402


def main(cfg_path: str, out: str, steps: int, k: int = 1) -> None:
    cfg = load_config(cfg_path)
    init_context(cfg.context)
    rank, group = init_distributed()
    assert group == 2, group
    loader = create_loader(cfg, "train", num_shards=group, shard_id=rank, output_dir=os.path.join(out, f"r{rank}"),
                           shuffle=False)
    net = build_model(cfg.model)
    params = lambda: {p.name: p.asnumpy() for p in net.trainable_params()}  # noqa: E731
    np.savez(os.path.join(out, f"rank{rank}_init.npz"), **params())
    opt = build_from_cfg(cfg.optimizer, OPTIMIZERS, params=net.trainable_params(),
                         learning_rate=np.full(steps, 0.05, np.float32))
    step = TrainStep(net, build_from_cfg(cfg.loss, LOSSES), opt, accumulate_steps=k)
    step.set_train(True)
    for i, (video, label) in enumerate(loader.dataset.create_tuple_iterator(num_epochs=1)):
        if i >= steps * k:
            break
        step(video, label)
    np.savez(os.path.join(out, f"rank{rank}_final.npz"), **params())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *(int(a) for a in sys.argv[4:5]))
