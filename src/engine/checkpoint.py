"""Checkpoints: atomic writes, resume bookkeeping, and loading pretrained weights.

A training checkpoint holds the network (incl. BN statistics), the optimizer state (momentum
buffers, global step), and metadata: ``epoch`` (completed epochs), ``global_step``, ``best_top1``,
the resolved config (YAML text) and the label map (JSON text). It is written to a temporary file
and renamed (:func:`src.outputs.atomic_write`), so a file with the final name is always complete.
A crash leaves at most hidden partial files (``.NAME.PID.tmp.ckpt`` and MindSpore's own
``.NAME.PID.tmp.tmp``), which are ignored and removed before the next save. A full disk removes
them at once and stops with one line naming the newest complete checkpoint, which
``--resume auto`` continues from once there is room again.
"""
from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import re
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import mindspore as ms
from mindspore import nn

from ..context import mindspore_warnings_off
from ..errors import UserError
from ..outputs import NoSpaceError, atomic_write, no_space_error, remove_partials

logger = logging.getLogger("src.engine")

META_KEYS = ("epoch", "global_step", "best_top1", "config_yaml", "label_map_json")
META_PREFIX = "meta."  # metadata entries are stored as meta.<key>, apart from parameter names
SKIP_ON_SAVE = ("learning_rate",)  # the per-step LR array is rebuilt from the config
STEP_PREFIX = "train_step."  # TrainStep's own state (train_step.PREFIX): loss scale, accumulation buffers
EPOCH_RE = re.compile(r"(?:^|[-_])epoch(\d+)\.ckpt$")  # epoch0012.ckpt (older runs: x3d-epoch0012.ckpt)
EMA_PREFIX = "ema."          # EMA shadow of parameter NAME: ema.NAME (src/engine/ema.py, train.ema)
EMA_COUNTER = "ema_updates"  # the number of EMA updates (its warm-up reads it)


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be used (one-line message naming the file)."""


def save_checkpoint(cell: nn.Cell, path: str, *, epoch: int, global_step: int, best_top1: float = 0.0,
                    config_yaml: str = "", class_names: Sequence[str] = (),
                    extra: Optional[Dict[str, Any]] = None) -> str:
    """Write ``cell``'s parameters plus metadata to ``path`` atomically (temp file, then rename).
    ``extra``: more named tensors/parameters to store beside them (the EMA shadows, ``ModelEMA.state()``).

    Stale partial files in the folder are removed first (they may be what filled the disk); a
    full disk raises :class:`~src.outputs.NoSpaceError` naming the newest complete checkpoint."""
    directory = os.path.dirname(os.path.abspath(path))
    remove_partials(directory)
    meta = {"epoch": int(epoch), "global_step": int(global_step), "best_top1": float(best_top1),
            "config_yaml": config_yaml, "label_map_json": json.dumps(list(class_names))}

    appended = {**(extra or {}), **{META_PREFIX + k: v for k, v in meta.items()}}

    def write(tmp: str) -> None:  # tmp ends in .ckpt (MindSpore appends .ckpt to any other name)
        with _failed_save_log_muted():
            ms.save_checkpoint(cell, tmp, append_dict=appended,
                               choice_func=lambda name: name not in SKIP_ON_SAVE)

    try:
        return atomic_write(path, write)
    except NoSpaceError:
        raise no_space_error(path, _intact_note(directory)) from None


def _intact_note(directory: str) -> str:
    """What a failed save leaves the user: the newest complete checkpoint and its epoch, if any."""
    found = find_resume_checkpoint(directory)
    if found is None:
        return "no complete checkpoint was saved before; free some space and run again"
    epoch = read_checkpoint(found)[1]["epoch"]
    return (f"the previous checkpoint {os.path.basename(found)} (epoch {epoch}) is intact; "
            f"free some space and rerun with --resume auto")


class _DropFailedSave(logging.Filter):
    """MindSpore logs a CRITICAL line of its own before re-raising a failed save; the error
    raised here (one line, or the traceback of an unexpected failure) already says it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Failed to save the checkpoint file" not in str(record.msg)


@contextlib.contextmanager
def _failed_save_log_muted() -> Iterator[None]:
    try:
        from mindspore import log as ms_log
        ms_logger = ms_log._get_logger()
    except Exception:  # another MindSpore version: its line stays
        yield
        return
    drop = _DropFailedSave()
    ms_logger.addFilter(drop)
    try:
        yield
    finally:
        ms_logger.removeFilter(drop)


def read_checkpoint(path: str) -> Tuple[Dict[str, ms.Parameter], Dict[str, Any]]:
    """(parameters, metadata) of a checkpoint; metadata is empty for plain weight files."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = ms.load_checkpoint(path)
    except Exception as e:  # MindSpore raises ValueError/RuntimeError with long texts
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable MindSpore checkpoint ({first})") from None
    meta: Dict[str, Any] = {}
    for key in META_KEYS:
        if META_PREFIX + key in data:
            value = data.pop(META_PREFIX + key)
            meta[key] = value.asnumpy().item() if hasattr(value, "asnumpy") else value
    if "label_map_json" in meta:
        meta["class_names"] = json.loads(meta.pop("label_map_json") or "[]")
    return data, meta


def periodic_checkpoints(directory: str) -> List[Tuple[int, str]]:
    """(epoch, path) of the complete periodic checkpoints in ``directory``, oldest first."""
    found = []
    for path in glob.glob(os.path.join(directory, "*epoch*.ckpt")):
        m = EPOCH_RE.search(os.path.basename(path))
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


def prune_checkpoints(directory: str, keep: int) -> None:
    """Keep the newest ``keep`` periodic checkpoints (``last``/``best`` are separate files); stale
    partial files go too (:func:`src.outputs.remove_partials`)."""
    for _, path in periodic_checkpoints(directory)[:-keep] if keep > 0 else []:
        os.remove(path)
    remove_partials(directory)


def find_resume_checkpoint(directory: str) -> Optional[str]:
    """The newest complete checkpoint in ``directory`` that loads (``last.ckpt`` or periodic)."""
    candidates = []
    for path in [os.path.join(directory, "last.ckpt")] + [p for _, p in periodic_checkpoints(directory)]:
        if os.path.isfile(path):
            candidates.append((os.path.getmtime(path), path))
    for _, path in sorted(candidates, reverse=True):
        try:
            _, meta = read_checkpoint(path)
        except CheckpointError as e:
            logger.warning("skipping unreadable checkpoint: %s", e)
            continue
        if "epoch" in meta:
            return path
    return None


def load_pretrained(net: nn.Cell, path: str, *, classifier: Sequence[str] = ()) -> List[str]:
    """Load weights from the checkpoint file ``path`` into ``net`` (see :func:`load_params`)."""
    params, _ = read_checkpoint(path)
    return load_params(net, params, source=path, classifier=classifier)


def load_params(net: nn.Cell, params: Dict[str, Any], *, source: str, classifier: Sequence[str] = ()) -> List[str]:
    """Load already-read checkpoint ``params`` into ``net``.

    Classifier parameters (``classifier``) whose shape differs (another class count) are left at
    their fresh initialisation and returned. Any other missing key or shape mismatch means a
    checkpoint of another architecture: it raises, listing the mismatched keys.
    """
    path = source
    own = {p.name: p for p in net.get_parameters()}
    skipped, mismatched = [], []
    to_load = {}
    for name, p in own.items():
        if name not in params:
            mismatched.append(f"{name} (missing)")
            continue
        src = params[name]
        if tuple(src.shape) != tuple(p.shape):
            if name in classifier:
                skipped.append(name)
                continue
            mismatched.append(f"{name} {tuple(src.shape)} vs model {tuple(p.shape)}")
            continue
        to_load[name] = src
    unexpected = [k for k in params if k not in own and not (_is_optimizer_state(k) or is_ema_key(k))]
    if mismatched or unexpected:
        parts = mismatched[:8] + [f"{k} (unexpected)" for k in unexpected[:8]]
        more = len(mismatched) + len(unexpected) - len(parts)
        raise CheckpointError(f"{path}: does not fit this model ({len(mismatched)} mismatched, "
                              f"{len(unexpected)} unexpected keys): {', '.join(parts)}"
                              + (f", ... {more} more" if more > 0 else ""))
    with mindspore_warnings_off():  # it would list the skipped classifier, which the caller reports
        ms.load_param_into_net(net, to_load, strict_load=True)
    return skipped


def _is_optimizer_state(name: str) -> bool:
    return name in ("global_step", "momentum", "learning_rate") or name.startswith(("accum.", "stat.", "moments.",
                                                                                     "moment1.", "moment2.", "beta1_power",
                                                                                     "beta2_power", STEP_PREFIX))


def is_ema_key(name: str) -> bool:
    """An EMA entry of a training checkpoint (a shadow weight or the update count)."""
    return name.startswith(EMA_PREFIX) or name == EMA_COUNTER


def ema_weights(params: Dict[str, Any], *, source: str) -> Dict[str, Any]:
    """The EMA weights of checkpoint ``params`` under the network's own names (``ema.NAME`` ->
    ``NAME``), for evaluation/inference with ``--ema``; one-line error when there are none."""
    shadows = {k[len(EMA_PREFIX):]: v for k, v in params.items() if k.startswith(EMA_PREFIX)}
    if not shadows:
        raise CheckpointError(f"{source}: has no EMA weights (no '{EMA_PREFIX}*' entries: trained with "
                              f"train.ema=false, or not a training checkpoint); run without --ema")
    return shadows


def restore_training_state(train_cell: nn.Cell, path: str, *, ema: Optional[nn.Cell] = None) -> Dict[str, Any]:
    """Load network and optimizer state saved by ``save_checkpoint``; returns its metadata.
    ``ema`` (a :class:`~src.engine.ema.ModelEMA`): its shadows too; ``meta["ema_restored"]`` says
    whether the checkpoint had them (if not, they restart from the restored weights)."""
    params, meta = read_checkpoint(path)
    if "epoch" not in meta:
        raise CheckpointError(f"{path}: has no training state (epoch/global_step); use --pretrained for weights")
    own = {p.name for p in train_cell.get_parameters()} - set(SKIP_ON_SAVE)
    # the train step's own state (loss scale, accumulation buffers) may be absent: a run that turned
    # loss scaling or accumulation on after the checkpoint starts them afresh
    missing = sorted(n for n in own - set(params) if not n.startswith(STEP_PREFIX))
    if missing:
        raise CheckpointError(f"{path}: cannot resume, {len(missing)} parameters missing: {', '.join(missing[:8])}")
    with mindspore_warnings_off():  # it would warn about the skipped learning rate; we check below
        not_loaded, _ = ms.load_param_into_net(train_cell, params, strict_load=True)
    not_loaded = [n for n in not_loaded if n not in SKIP_ON_SAVE and not n.startswith(STEP_PREFIX)]
    if not_loaded:
        raise CheckpointError(f"{path}: cannot resume, not loaded: {', '.join(not_loaded[:8])}")
    if ema is not None:
        meta["ema_restored"] = ema.load_state(params, source=path)
    return meta

