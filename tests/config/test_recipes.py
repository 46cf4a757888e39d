"""The per-device X3D recipes (src/config/x3d_{xs,s,m}_{gpu8,ascend8}.yaml) reproduce SlowFast's
configs/Kinetics/X3D_{XS,S,M}.yaml: 16 clips per GPU x 8 GPUs = a global batch of 128, BASE_LR 0.1,
WARMUP_START_LR 0.01 over 35 of 300 epochs, cosine to 0. The expected values are SlowFast's, written
out here; the schedule is built through the registry as train.py builds it."""
import math

import numpy as np
import pytest

from src.config import CONFIG_DIR, load_config
from src.engine import lr_schedule  # noqa: F401  (registers the schedules)
from src.registry import LR_SCHEDULES, build_from_cfg

DEVICES = 8
RECIPES = [(v, d) for v in ("xs", "s", "m") for d in ("gpu8", "ascend8")]


def _schedule(cfg, steps_per_epoch=10):
    tl = cfg.data_loader.train
    global_batch = tl.batch_size * DEVICES * cfg.train.accumulate_steps  # clips per optimizer step
    lr = build_from_cfg(cfg.learning_rate, LR_SCHEDULES, where="learning_rate", epochs=cfg.train.epochs,
                        steps_per_epoch=steps_per_epoch, global_batch_size=global_batch)
    return global_batch, lr


@pytest.mark.parametrize("variant,device", RECIPES)
@pytest.mark.parametrize("overrides", [[], ["data_loader.train.batch_size=8", "train.accumulate_steps=2"]],
                         ids=["16x8", "8x8x2"])
def test_recipe_gives_slowfast_global_batch_and_lr(variant, device, overrides):
    cfg = load_config(f"{CONFIG_DIR}/x3d_{variant}_{device}.yaml", overrides)
    assert cfg.model.type == f"x3d_{variant}"
    assert cfg.context.device_target == {"gpu8": "GPU", "ascend8": "Ascend"}[device]
    assert (cfg.train.amp_level, cfg.train.loss_scale_type) == ("O2", "dynamic")
    global_batch, lr = _schedule(cfg)
    assert global_batch == 128
    assert cfg.train.epochs == 300
    n = 10  # steps per epoch
    assert lr[0] == pytest.approx(0.01, rel=1e-6)  # WARMUP_START_LR
    # end of warm-up: the cosine value at epoch 35 of 300 (SlowFast's get_lr_at_epoch)
    assert lr[35 * n] == pytest.approx(0.1 * (math.cos(math.pi * 35 / 300) + 1) / 2, rel=1e-6)
    assert float(np.max(lr)) == pytest.approx(0.1 * (math.cos(math.pi * 35 / 300) + 1) / 2, rel=1e-6)
    assert lr[-1] == pytest.approx(0.1 * (math.cos(math.pi * (300 * n - 1) / (300 * n)) + 1) / 2, abs=1e-7)


def test_recipe_on_fewer_devices_scales_the_lr_linearly():
    # 4 devices x 16 clips: SlowFast's linear scaling rule halves every rate
    cfg = load_config(f"{CONFIG_DIR}/x3d_xs_gpu8.yaml")
    lr = build_from_cfg(cfg.learning_rate, LR_SCHEDULES, where="learning_rate", epochs=300,
                        steps_per_epoch=10, global_batch_size=16 * 4)
    assert lr[0] == pytest.approx(0.005, rel=1e-6)
    assert lr[350] == pytest.approx(0.05 * (math.cos(math.pi * 35 / 300) + 1) / 2, rel=1e-6)


def test_from_scratch_recipe_has_slowfasts_regularisation():
    """x3d_xs_scratch.yaml against SlowFast's from-scratch values (AUG.*, MIXUP.* of its MViTv2
    Kinetics configs), with the chain built through the registry as the loader builds it."""
    from src.data.transforms import build_transforms
    from src.models import build_model

    cfg = load_config(f"{CONFIG_DIR}/x3d_xs_scratch.yaml")
    train = cfg.data_loader.train
    ops = {op["type"]: op for op in train.map.operations}
    assert ops["RandAugment"]["policy"] == "rand-m7-n4-mstd0.5-inc1"                    # AUG.AA_TYPE
    assert (ops["RandomErasing"]["prob"], ops["RandomErasing"]["mode"], ops["RandomErasing"]["max_count"]) \
        == (0.25, "pixel", 1)                                                             # AUG.RE_*
    assert train.clips_per_video == 2                                                     # AUG.NUM_SAMPLE
    mix = train.mixup
    assert (mix.enable, mix.mixup_alpha, mix.cutmix_alpha, mix.prob, mix.switch_prob) == (True, 0.8, 1.0, 1.0, 0.5)
    assert cfg.loss.label_smoothing == 0.1                                                # MIXUP.LABEL_SMOOTH_VALUE
    # the recipe's own parts stay x3d_xs.yaml's
    base = load_config(f"{CONFIG_DIR}/x3d_xs.yaml")
    assert cfg.learning_rate == base.learning_rate and cfg.optimizer == base.optimizer
    assert cfg.train.epochs == base.train.epochs
    # it builds: a 160-px crop of a uint8 clip comes out normalised, (C, T, H, W)
    chain = build_transforms(train.map.operations)
    clip = np.random.default_rng(0).integers(0, 256, (4, 200, 260, 3), dtype=np.uint8)
    out = chain(clip, rng=np.random.default_rng(1))
    assert out.shape == (3, 4, 160, 160) and out.dtype == np.float32
    net = build_model(cfg.model)  # as train.py builds it: stochastic depth rising to 0.1 at the last block
    rates = [c.rate for _, c in net.cells_and_names() if type(c).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.1)


def test_multigrid_recipe_uses_slowfasts_default_cycles():
    cfg = load_config(f"{CONFIG_DIR}/x3d_xs_multigrid.yaml")
    mg = cfg.train.multigrid
    assert (mg.long_cycle, mg.short_cycle, mg.epoch_factor) == (True, True, 1.5)
    h = 0.5 ** 0.5
    assert [float(v) for f in mg.long_cycle_factors for v in f] == pytest.approx(
        [0.25, h, 0.5, h, 0.5, 1.0, 1.0, 1.0])                                  # MULTIGRID.LONG_CYCLE_FACTORS
    assert list(map(float, mg.short_cycle_factors)) == pytest.approx([0.5, h])          # SHORT_CYCLE_FACTORS
