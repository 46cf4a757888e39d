"""Convert a published checkpoint (a torch ``.pyth``/``.pth``) to a MindSpore ``.ckpt``.

    python -m src.tools.convert_checkpoint --src FILE.pth --config CFG --out FILE.ckpt \\
        [--from LAYOUT] [--verify] [KEY=VALUE ...]

The model of ``--config`` says which layouts can apply (``src/models/weights.py``: X3D's
``slowfast`` and ``pytorchvideo``, the Efficient-3DCNNs family's ``efficient3dcnns``); the layout
is detected from the keys unless ``--from`` names it. The layout maps every tensor onto the
model's parameter names (BatchNorm statistics renamed, ``num_batches_tracked`` dropped) and is
strict: leftovers on either side or a shape mismatch stop it with one line naming the keys. The
written checkpoint carries the model's input convention (its resolved config with channel order,
value range, mean and std) so eval and infer apply it.

PyTorch is needed only here, to read the file; it is not a runtime dependency. No code from a
downloaded file runs: the pickle's opcodes are listed first (:mod:`pickletools`, which executes
nothing) and a file naming anything but torch's tensor rebuilders and plain containers is refused
("holds Python objects other than tensors; refusing to unpickle it"), then it is read with
``torch.load(weights_only=True)``. ``--verify`` (layouts with a run-time
reference: X3D via pytorchvideo) runs the reference and the converted model on the same random
clip (logits, eval mode), prints ``max_abs_diff: X`` and writes nothing above 1e-4.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..cli import ArgumentParser, add_config_args, parse_with_overrides, run_cli
from ..config import config_from_args, dump_config
from ..errors import UserError

TOLERANCE = 1e-4


# ----------------------------------------------------------------------------------- reading
def import_torch() -> Any:
    """``import torch`` with a one-line explanation when it is missing."""
    try:
        import torch
    except ImportError:
        raise UserError("converting .pyth checkpoints needs PyTorch, which is not a runtime dependency: "
                        "pip install torch (CPU build is enough)") from None
    return torch


# the non-torch globals torch.load(weights_only=True) accepts by default
SAFE_GLOBALS = ("collections.OrderedDict", "collections.Counter", "builtins.set", "builtins.complex",
                "builtins.bytearray", "_codecs.encode")


def _allowed_global(name: str) -> bool:
    """Globals a tensor checkpoint may name: torch's (its weights-only unpickler then checks which)
    and plain containers."""
    return name in SAFE_GLOBALS or name.split(".", 1)[0] == "torch"


_PICKLE_STRINGS = ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
                   "BINSTRING", "STRING")


def _globals_of(stream: Any) -> Tuple[List[str], bool]:
    """``(module.name of every GLOBAL / STACK_GLOBAL, ended cleanly)`` of the next pickle in
    ``stream``, read with :mod:`pickletools` (which decodes opcodes and runs nothing)."""
    import pickletools
    found: List[str] = []
    recent: List[Optional[str]] = []  # the last two strings pushed (STACK_GLOBAL's module and name)
    memo: Dict[Any, Optional[str]] = {}  # memo slot -> its string (None: something else)
    last: Optional[str] = None  # the string the previous opcode pushed, if it pushed one
    try:
        for op, arg, _ in pickletools.genops(stream):
            pushed: Optional[str] = None
            if op.name in _PICKLE_STRINGS:
                pushed = str(arg)
                recent = (recent + [pushed])[-2:]
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[arg] = last
            elif op.name == "MEMOIZE":
                memo[len(memo)] = last
            elif op.name in ("BINGET", "LONG_BINGET", "GET"):
                pushed = memo.get(arg)
                recent = (recent + [pushed])[-2:]
            elif op.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(recent) == 2 and None not in recent:
                found.append(f"{recent[0]}.{recent[1]}")
            if op.name not in ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"):
                last = pushed
        return found, True
    except Exception:  # not (or no longer) a pickle: torch.load judges the rest
        return found, False


def pickle_globals(path: str) -> Tuple[List[str], bool]:
    """``(names, is_pickle)``: the importable names (``module.name``) the pickles of a torch file
    refer to (the zip format's ``data.pkl``, or the legacy format's leading pickles: magic,
    protocol, system info, the object), and whether its first pickle decodes to the end."""
    import zipfile
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                pkl = [n for n in zf.namelist() if n.endswith("data.pkl")]
                if not pkl:
                    return [], False
                with zf.open(pkl[0]) as f:
                    return _globals_of(f)
        found: List[str] = []
        first = True
        with open(path, "rb") as f:
            for i in range(5):
                names, clean = _globals_of(f)
                found += names
                first = first and (clean or i > 0)
                if not clean:
                    break
        return found, first
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return [], False


def _refusal_detail(e: BaseException) -> str:
    """The informative line of a torch.load error, without its advice to load with weights_only=False
    (which would run whatever code the file holds)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    useful = [ln for ln in lines if "weights_only" not in ln and not ln.startswith("Check the documentation")
              and not ln.startswith("Please file an issue")]
    return (useful[0] if useful else type(e).__name__)[:200]


def load_torch_state(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """Read a ``.pyth`` with ``weights_only=True``; returns ``(state as numpy, other entries)``.

    Accepts ``{"model_state": {...}, ...}`` (SlowFast and pytorchvideo hub files),
    ``{"state_dict": {...}, "arch": ..., ...}`` (Efficient-3DCNNs) or a bare state dict.
    """
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such checkpoint file")
    torch = import_torch()
    names, is_pickle = pickle_globals(path)
    foreign = [g for g in names if not _allowed_global(g)]
    if foreign:  # refused before torch sees it: the message names what the file would have run
        raise UserError(f"{path}: holds Python objects other than tensors ({', '.join(foreign[:3])}); "
                        f"refusing to unpickle it (a checkpoint to convert holds only tensors, numbers, "
                        f"strings and containers)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not is_pickle:  # random bytes, a truncated legacy file
            raise UserError(f"{path}: cannot read it as a torch checkpoint (truncated or corrupt?): "
                            f"{_refusal_detail(e)}") from None
        # a well-formed pickle that torch's tensor-only unpickler refused
        raise UserError(f"{path}: torch's tensor-only reader refused it ({_refusal_detail(e)}); "
                        f"refusing to unpickle it with a less strict one") from None
    except Exception as e:  # truncated zip, random bytes ...
        raise UserError(f"{path}: cannot read it as a torch checkpoint (truncated or corrupt?): "
                        f"{_refusal_detail(e)}") from None
    if not isinstance(obj, Mapping):
        raise UserError(f"{path}: expected a dict with 'model_state' or 'state_dict' (or a state dict), got {type(obj).__name__}")
    extra: Dict[str, Any] = {}
    entry = next((k for k in ("model_state", "state_dict") if k in obj), None)
    if entry is not None:
        extra = {k: v for k, v in obj.items() if k != entry}
        obj = obj[entry]
        if not isinstance(obj, Mapping):
            raise UserError(f"{path}: '{entry}' should be a state dict, got {type(obj).__name__}")
    elif not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path}: expected a dict with 'model_state' or 'state_dict' (or a state dict of tensors); "
                        f"top-level keys: {', '.join(map(str, list(obj)[:6]))}")
    state: Dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise UserError(f"{path}: state dict entry '{key}' is a {type(value).__name__}, not a tensor")
        state[str(key)] = value.detach().cpu().float().numpy() if value.is_floating_point() \
            else value.detach().cpu().numpy()
    if not state:
        raise UserError(f"{path}: the state dict is empty")
    return state, extra


# ----------------------------------------------------------------------------------- main
def _load(net: Any, params: Mapping[str, np.ndarray]) -> None:
    import mindspore as ms
    not_loaded, unused = ms.load_param_into_net(net, {k: ms.Parameter(ms.Tensor(v), name=k)
                                                      for k, v in params.items()}, strict_load=True)
    if not_loaded or unused:
        raise RuntimeError(f"internal: parameters not loaded {not_loaded[:5]}, unused {unused[:5]}")


def _logits(net: Any, clip: np.ndarray) -> np.ndarray:
    import mindspore as ms
    previous_mode = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)  # one forward: no graph compilation
    try:
        net.set_train(False)
        return net(ms.Tensor(clip)).asnumpy()
    finally:
        ms.set_context(mode=previous_mode)


def convert(src: str, cfg: Any, out: str, layout: Optional[str] = None,
            run_verify: bool = False, seed: int = 0) -> Dict[str, Any]:
    """Convert ``src`` for the model of ``cfg`` and write ``out``; returns a summary."""
    from ..engine.checkpoint import save_checkpoint
    from ..models.weights import resolve_layout
    state, extra = load_torch_state(src)
    model_type = str(cfg.model.type)
    chosen = resolve_layout(list(state), model_type, layout, where=src)  # before the (slower) model build
    import mindspore as ms
    ms.set_device("CPU")  # conversion and --verify run on the CPU
    from ..models import build_model
    net = build_model(cfg.model, **chosen.build_kwargs(run_verify))
    params, info = chosen.convert(state, net, where=src)
    chosen.check_extra(extra, net, where=src)
    _load(net, params)
    summary: Dict[str, Any] = dict(info, layout=chosen.name, params=len(params), written=False)
    if run_verify:
        c = net.pretrained_cfg
        clip = np.random.default_rng(seed).standard_normal(
            (1, 3, c.num_frames, c.crop_size, c.crop_size), dtype=np.float32)
        expected = chosen.reference_logits(net, cfg.model, state, clip)
        summary["max_abs_diff"] = float(np.max(np.abs(_logits(net, clip) - expected)))
        if not summary["max_abs_diff"] <= TOLERANCE:
            return summary  # not exact: write nothing
    if run_verify and chosen.build_kwargs(True):
        net = build_model(cfg.model)  # the configured head for the written file
        _load(net, params)
    save_checkpoint(net, out, epoch=0, global_step=0, config_yaml=dump_config(cfg))
    summary["written"] = True
    return summary


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m src.tools.convert_checkpoint", description=__doc__.split("\n")[0])
    parser.add_argument("--src", required=True, help="published torch checkpoint (.pyth / .pth)")
    parser.add_argument("--out", required=True, help="MindSpore .ckpt to write")
    parser.add_argument("--from", dest="layout", default=None,
                        help="source layout (default: detected from the keys): slowfast, pytorchvideo, efficient3dcnns")
    parser.add_argument("--verify", action="store_true",
                        help=f"compare logits with the reference implementation (fails above {TOLERANCE:g})")
    add_config_args(parser)
    return parse_with_overrides(parser, argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    cfg = config_from_args(args)
    summary = convert(args.src, cfg, args.out, args.layout, args.verify)
    print(f"layout: {summary['layout']}")
    print(f"tensors: {summary['read']} read, {summary['dropped']} num_batches_tracked dropped, "
          f"{summary['params']} parameters written")
    if summary.get("identity_bn"):
        print(f"identity BN (absent in the source): {', '.join(summary['identity_bn'])}")
    if "max_abs_diff" in summary:
        diff = summary["max_abs_diff"]
        print(f"max_abs_diff: {diff:.3g}")
        if not summary["written"]:
            raise UserError(f"--verify: max_abs_diff {diff:.3g} exceeds {TOLERANCE:g}: the conversion is not "
                            f"exact; nothing written")
    print(f"wrote: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
