"""Train a zoo model from a YAML config, on one process or many (``msrun``), in MindSpore graph mode.

    python train.py --config src/config/x3d_xs.yaml [KEY=VALUE ...] [--device CPU|GPU|Ascend]
                    [--output DIR] [--resume PATH|auto] [--pretrained PATH]

Reads top to bottom: context -> data -> model -> loss -> LR -> optimizer -> callbacks -> train.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from src.cli import ArgumentParser, add_config_args, parse_with_overrides, run_cli
from src.config import ConfigError, config_from_args, dump_config


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(prog="train.py", description="Train a video model (graph mode; data parallel under msrun).")
    add_config_args(p)
    p.add_argument("--device", default=None, help="CPU | GPU | Ascend (default: context.device_target)")
    p.add_argument("--output", default=None, help="output folder (default: train.output_dir)")
    p.add_argument("--resume", default=None, help="'auto' (newest complete checkpoint in the output folder) or a path")
    p.add_argument("--pretrained", default=None, help="initialise from these weights (classifier re-initialised "
                                                      "if the class count differs)")
    return parse_with_overrides(p, argv)


def main(argv: Optional[List[str]] = None) -> int:
    return run(parse_args(argv))


def run(args: argparse.Namespace) -> int:
    import mindspore as ms  # noqa: F401  (before src.data: decord must load after MindSpore)
    from src.context import init_context, init_distributed, launcher_workers
    from src.data import create_loader
    from src.engine.sink import plan_sink
    from src.engine.checkpoint import find_resume_checkpoint, load_pretrained, restore_training_state
    from src.engine.trainer import (CheckpointSaver, MetricsWriter, PreciseBN, ProgressLogger, TrainState,
                                    TrainStep, Validation, fit)
    from src.data.multigrid import MultigridLoader
    from src.engine.multigrid import MultigridMonitor, build_plan, enabled as multigrid_enabled
    from src.models import build_model, count_params
    from src.models.layers.norm import sync_group
    from src.outputs import remove_partials
    from src.registry import LOSSES, LR_SCHEDULES, OPTIMIZERS, build_from_cfg

    cfg = config_from_args(args)
    for key, value in (("output_dir", args.output), ("resume", args.resume), ("pretrained", args.pretrained)):
        if value is not None:
            cfg.train[key] = value
    tc = cfg.train
    out = tc.output_dir

    # ---- context
    device = init_context(cfg.context, args.device)
    if cfg.model.get("norm") == "syncbn":  # refused before joining the group: a worker that stops
        sync_group(device, launcher_workers())  # later leaves the others waiting in init()
    rank, group = init_distributed()
    main_rank = rank == 0
    os.makedirs(out, exist_ok=True)
    logging.basicConfig(level=logging.INFO if main_rank else logging.WARNING, format="%(message)s")
    say = print if main_rank else (lambda *a, **k: None)
    if main_rank:  # partial files of a run that was killed or hit a full disk (they may fill it still)
        for path in remove_partials(out):
            say(f"removed the partial file {path} of an earlier run")

    # ---- data (train sharded by rank; validation on rank 0 over the whole eval split, with the
    # train split's class list: a label it lacks stops here, before training)
    train_loader = create_loader(cfg, "train", num_shards=group, shard_id=rank, output_dir=out,
                                 seed=cfg.context.seed)
    classes = train_loader.class_names
    val_loader = (create_loader(cfg, "eval", output_dir=out, class_names=classes)
                  if main_rank and tc.eval_interval > 0 else None)
    if cfg.model.num_classes != len(classes):
        raise ConfigError(f"model.num_classes is {cfg.model.num_classes} but the training data set has "
                          f"{len(classes)} classes; set model.num_classes={len(classes)}")

    # ---- model
    net = build_model(cfg.model)  # model.norm=syncbn: BN statistics over all ranks (GPU/Ascend; src/models/layers/norm.py)
    if group > 1 and cfg.model.get("norm") == "syncbn" and tc.precise_bn_batches > 0:
        raise ConfigError("train.precise_bn_batches: precise BN runs its forward passes on rank 0 alone, where "
                          "SyncBatchNorm (model.norm=syncbn) would wait for the other ranks; set it to 0 with syncbn")
    if tc.pretrained:
        skipped = load_pretrained(net, tc.pretrained, classifier=net.classifier_names())
        say(f"pretrained weights: {tc.pretrained}"
            + (f" (re-initialised for {len(classes)} classes: {', '.join(skipped)})" if skipped else ""))

    # ---- loss
    loss_fn = build_from_cfg(cfg.loss, LOSSES, where="loss")

    # ---- learning rate: one value per step; train.epochs is the only epoch count
    # (optimizer steps: train.accumulate_steps = k batches each; an epoch's last batches that do not
    # fill k are dropped, so every epoch ends with the accumulation buffers empty)
    k = tc.accumulate_steps
    steps = train_loader.steps_per_epoch // k
    if steps < 1:
        raise ConfigError(f"train.accumulate_steps: {k} batches per optimizer step, but an epoch has only "
                          f"{train_loader.steps_per_epoch} batches per process")
    if tc.max_steps_per_epoch > 0:
        steps = min(steps, tc.max_steps_per_epoch)
    global_batch = train_loader.batch_size * group * k  # clips per optimizer step (LR scaling reads it)
    lr_values = build_from_cfg(cfg.learning_rate, LR_SCHEDULES, where="learning_rate", epochs=tc.epochs,
                               steps_per_epoch=steps, global_batch_size=global_batch)
    # ---- multigrid (train.multigrid; docs/training.md "Multigrid training"): the epochs, their shapes
    # and the per-step LR come from the plan; precise BN keeps the default-shape loader
    plan, plain_loader, epochs = None, train_loader, tc.epochs
    if multigrid_enabled(cfg):
        if k > 1:
            raise ConfigError(f"train.multigrid: needs train.accumulate_steps=1, got {k}")
        why = net.smaller_clip_problem()  # the model knows its own pooling
        if why:
            raise ConfigError(f"train.multigrid: {cfg.model.type} {why}; multigrid needs a head that pools the "
                              f"whole map (X3D)")
        plan = build_plan(cfg, default_batch=train_loader.batch_size,
                          samples_per_shard=len(train_loader.source) // group, max_steps_per_epoch=tc.max_steps_per_epoch)
        if min(c for _, _, c in plan.shapes()) < 32:
            raise ConfigError(f"train.multigrid: the schedule crops {min(c for _, _, c in plan.shapes())} px, but the "
                              f"networks need crops >= 32; raise model.crop_size or train.multigrid.*_factors")
        train_loader = MultigridLoader(plain_loader, plan, seed=cfg.context.seed, num_shards=group, shard_id=rank,
                                       num_parallel_workers=cfg.data_loader.train.get("num_parallel_workers", 1))
        lr_values = plan.learning_rates(lambda e, n: build_from_cfg(
            cfg.learning_rate, LR_SCHEDULES, where="learning_rate", epochs=e, steps_per_epoch=n,
            global_batch_size=global_batch), tc.epochs)
        steps, epochs = plan.steps_in_epoch(0), plan.epochs

    # ---- optimizer
    params = net.trainable_for(tc.finetune)  # the model owns its freezing
    optimizer = build_from_cfg(cfg.optimizer, OPTIMIZERS, where="optimizer", params=params,
                               learning_rate=lr_values)
    step_cell = TrainStep(net, loss_fn, optimizer, amp_level=tc.amp_level, loss_scale_type=tc.loss_scale_type,
                          loss_scale=tc.loss_scale, loss_scale_factor=tc.loss_scale_factor,
                          loss_scale_window=tc.loss_scale_window, clip_grad=tc.clip_grad, clip_value=tc.clip_value,
                          accumulate_steps=k)  # docs/training.md "Mixed precision, loss scale, clipping, accumulation"
    # EMA of the weights (train.ema) on rank 0 only: data-parallel weights are equal on every rank
    # (BN statistics: rank 0's, which are what its checkpoints hold anyway)
    ema = None
    if tc.ema and main_rank:
        from src.engine.ema import EMA, ModelEMA
        ema = ModelEMA(net, decay=tc.ema_decay, warmup=tc.ema_warmup)

    # sink mode: CPU (and PyNative) cannot sink; one notice, then the plain loop (src/engine/sink.py)
    sink = plan_sink(tc.sink_mode, tc.sink_size, device, steps, mode=cfg.context.mode)
    if sink.notice:
        say(sink.notice)
    sunk = None
    if sink.enabled:  # GPU/Ascend, graph mode: sink.size optimizer steps per device call
        if ema is not None and sink.size > 1:
            raise ConfigError(f"train.ema: the EMA is updated after every optimizer step, a sunk call runs "
                              f"{sink.size}; set train.sink_size=1 or train.sink_mode=false")
        if plan is not None:
            raise ConfigError("train.sink_mode: multigrid changes the batch shape between steps, a sunk loop "
                              "cannot; set train.sink_mode=false")
        from src.engine.sink import SunkStep
        sunk = SunkStep(step_cell, train_loader.dataset, sink.size, accumulate_steps=k,
                        jit_level=ms.get_context("jit_level") or None, mode=cfg.context.mode)
        say(f"data sink: {sink.size} steps per device call")

    state = TrainState(epochs=epochs, steps_per_epoch=steps, global_batch=global_batch,
                       total_steps=plan.total_steps if plan is not None else 0)
    resume = find_resume_checkpoint(out) if tc.resume == "auto" else tc.resume
    if resume:
        meta = restore_training_state(step_cell, resume, ema=ema)
        state.epoch, state.global_step = int(meta["epoch"]), int(meta["global_step"])
        if plan is not None and plan.steps_before(min(state.epoch, plan.epochs)) != state.global_step:
            raise ConfigError(f"{resume}: saved at epoch {state.epoch}, step {state.global_step}, but the multigrid "
                              f"plan of this config reaches epoch {state.epoch} at step "
                              f"{plan.steps_before(min(state.epoch, plan.epochs))}; resume with the config it was "
                              f"trained with (train.multigrid, train.epochs, data_loader.train.batch_size)")
        state.best_top1 = float(meta.get("best_top1", -1.0)) or -1.0
        state.last_checkpoint = resume
        state.skipped_steps = step_cell.skipped_updates()  # overflow skips before, from the checkpoint
        state.optimizer_steps = state.global_step - state.skipped_steps
        state.loss_scale = step_cell.current_loss_scale()
        say(f"resumed from {resume}: epoch {state.epoch}, step {state.global_step}, "
            f"lr {lr_values[min(state.global_step, len(lr_values) - 1)]:.6f}")
        if ema is not None:
            say(f"EMA: {ema.num_updates} updates restored" if meta["ema_restored"] else
                "EMA: the checkpoint has none (trained with train.ema=false); it starts from the resumed weights")
    elif tc.resume == "auto":
        say(f"resume=auto: no checkpoint in {out}, starting from scratch")

    # ---- callbacks (only rank 0 writes)
    config_yaml = dump_config(cfg, os.path.join(out, "config.yaml") if main_rank else None)
    progress = ProgressLogger(log_interval=tc.log_interval, progress_bar=bool(tc.progress_bar) and main_rank,
                              loader=train_loader, log_file=os.path.join(out, "train.log") if main_rank else None,
                              quiet=not main_rank)  # under msrun only rank 0 prints step/epoch lines
    callbacks = []
    if ema is not None:
        callbacks.append(EMA(ema))  # first: validation and checkpoints see this step's average
    if main_rank:
        if plan is not None:  # first: its stage line precedes the epoch's step lines
            callbacks.append(MultigridMonitor(step_cell, plan, log=progress.log, group=group))
        pbn_batches = tc.precise_bn_batches or (tc.multigrid.precise_bn_batches if plan is not None else 0)
        callbacks += [PreciseBN(net, plain_loader, num_batches=pbn_batches, finetune=tc.finetune,
                                eval_interval=tc.eval_interval, period=tc.precise_bn_period,
                                has_validation=val_loader is not None, log=progress.log),
                      Validation(net, val_loader, interval=tc.eval_interval, finetune=tc.finetune, log=progress.log,
                                 ema=ema),
                      CheckpointSaver(step_cell, out, interval=tc.ckpt_interval, keep=tc.keep_checkpoint_max,
                                      config_yaml=config_yaml, class_names=classes, log=progress.log, ema=ema),
                      MetricsWriter(out, log_interval=tc.log_interval)]
    callbacks.append(progress)  # last: its epoch summary shows the validation just run
    say(f"device {device}, {group} process(es), {cfg.model.type}: {count_params(net):,} trainable parameters "
        f"({len(params):,} tensors optimised, finetune={tc.finetune}); {train_loader.num_samples} clips/shard, "
        f"{steps} steps/epoch of {global_batch} clips, {tc.epochs} epochs")
    if step_cell.amp_level != "O0" or tc.loss_scale_type != "none" or tc.clip_grad != "none" or k > 1:
        say(f"precision {step_cell.amp_level} (train.amp_level={tc.amp_level}), loss scale {tc.loss_scale_type}"
            f"{f' from {tc.loss_scale:g}' if tc.loss_scale_type != 'none' else ''}, clip_grad {tc.clip_grad}"
            f"{f' at {tc.clip_value:g}' if tc.clip_grad != 'none' else ''}, {k} batch(es) of "
            f"{train_loader.batch_size * group} clips per optimizer step")
    if plan is not None:
        say(f"multigrid training: {plan.epochs} epochs (train.epochs {tc.epochs} x epoch_factor "
            f"{tc.multigrid.epoch_factor}), {plan.total_steps} steps, {len(plan.shapes())} batch shapes:")
        for line in plan.describe():
            say(line)
    if ema is not None:
        say(f"EMA of the weights: decay {tc.ema_decay} after a warm-up of time constant {tc.ema_warmup:g} updates; "
            f"validated beside the raw weights, its top-1 picks best.ckpt")
    if getattr(train_loader, "augment_note", lambda: None)():  # docs/training.md "MixUp / CutMix, ..."
        say(train_loader.augment_note())

    # ---- train
    if plan is not None:  # a new shape's first call compiles; retried on MindSpore's parser glitch (multigrid.py)
        from src.engine.multigrid import RetryFirstCompile
        step_cell = RetryFirstCompile(step_cell, log=progress.log)
    state = fit(step_cell, train_loader, state, lr_values, callbacks=callbacks, finetune=tc.finetune,
                seed=cfg.context.seed, sunk=sunk)
    if main_rank and state.last_val:
        v = state.last_val
        ema_text = (f"  EMA top-1: {100 * v['ema_top1']:.2f}%  top-5: {100 * v['ema_top5']:.2f}%"
                    if "ema_top1" in v else "")
        say(f"final validation top-1: {100 * v['top1']:.2f}%  top-5: {100 * v['top5']:.2f}%{ema_text} "
            f"({v['num_videos']} videos); best{' EMA' if ema_text else ''} {100 * max(state.best_top1, 0):.2f}%; "
            f"checkpoints in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
