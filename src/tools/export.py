"""Export a trained model to MINDIR or ONNX for deployment.

    python -m src.tools.export --config src/config/x3d_xs.yaml --ckpt best.ckpt \\
        --format MINDIR|ONNX --out x3d_xs.mindir [--batch N|dynamic] [--frames T] [--crop S]

What is exported: the eval-mode network (``set_train(False)``) with every BatchNorm folded into the
convolution before it (``--no-fold-bn`` keeps them), input float32 (N, 3, T, S, S),
output (N, classes) softmax probabilities averaged over the head's positions (SlowFast testing).
T defaults to the model's ``num_frames`` and S to ``infer.crop_size`` (the test crop).
The network comes from the one inference loader (``src/engine/inference.py``). The batch
dimension is dynamic unless ``--batch N`` fixes it. Every file carries its metadata as JSON
(``export_metadata``: class names, input shape, frames, sampling rate, short side, crop,
mean/std, value range, channel order, eval output) in the MINDIR's ``user_info`` or the ONNX
``metadata_props``, so ``infer.py --mindir FILE`` needs no config and no label map.

The conv formulation is chosen for the format, since the CPU default (``cpp``, an AOT C++
``ops.Custom``) cannot live in a file for another runtime (formulation names: the layer policy,
``src/models/layers/policy.py``; ``--conv-impl fold`` and ``custom`` are deprecated spellings of
``banded`` and ``cpp``):

* MINDIR: channelwise convs as ``banded`` (grouped Conv2D with an in-graph banded weight: exact
  and portable to every backend); stem ``native``.
* MINDIR with ``--conv-impl cpp``: the CPU inference network itself, C++ kernels included. A
  MINDIR stores each AOT kernel as the absolute path of its shared library, so this file runs only
  on a CPU where that library exists (this machine, or one with the same kernel cache); the
  loader checks this and says so in one line. It needs a fixed ``--batch N`` (a loaded MINDIR
  cannot infer the kernels' output shapes for a dynamic batch). The fast file for CPU deployment.
* ONNX: ``native`` grouped Conv3D (ONNX ``Conv`` with group=C). MindSpore 2.x writes Conv
  ``pads`` in its own (t_begin, t_end, h_begin, h_end, ...) order instead of ONNX's
  (t_begin, h_begin, ..., t_end, h_end, ...), which is wrong whenever the padding differs between
  axes (the stem's (0,1,1) and (2,0,0)); the pads are reordered here. MindSpore also refuses dynamic
  shapes for ONNX, so the file is exported at two batch sizes, the Reshape shape entries that
  differ (the batch) become -1 and the input/output batch dimension becomes symbolic. Its
  ``AvgPool3D`` has no ONNX converter: the network's ``prepare_export("ONNX")`` writes X3D's head
  pool at a test crop above the train crop as one slice + mean per pooled position.

``--stream`` (streamable, i.e. causal, networks: MoViNet ``model.causal: true``; MINDIR only)
exports the stream step instead, ``step(x, *states) -> (logits, *states')`` with x (N, 3, 1, S, S)
(one frame, N = ``--batch``, default 1) and the states in ``state_names()`` order as further inputs
and outputs (``docs/streaming.md``); the metadata adds ``stream``: the state names, shapes and
dtypes, so ``infer.py --mindir FILE`` runs it one frame per step. It is verified by running both
the file and the checkpoint's step over a few frames from zero states, comparing the logits and
every state.

Every file is checked before it is published: it is loaded with its runtime (``nn.GraphCell`` /
onnxruntime), run on a random clip and compared with the checkpoint network; above the tolerance
nothing is written. The file is written to a temporary name and renamed. Errors are one
``error:`` line with exit status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..cli import ArgumentParser, add_config_args, parse_with_overrides, run_cli
from ..config import config_from_args
from ..errors import UserError
from ..outputs import atomic_write

FORMATS = ("MINDIR", "ONNX")
DEFAULT_IMPL = {"MINDIR": "banded", "ONNX": "native"}
# --conv-impl: the channelwise formulations of src/models/layers/policy.py, then the deprecated
# spellings it maps (fold -> banded, custom -> cpp); tests/tools/test_export.py checks they agree
CONV_IMPLS = ("native", "banded", "cpp", "custom", "fold")
TOLERANCE = {"MINDIR": 1e-5, "ONNX": 1e-4}
EXTENSION = {"MINDIR": ".mindir", "ONNX": ".onnx"}
ONNX_BATCHES = (2, 3)  # the two batch sizes whose exports reveal the batch-dependent constants


class ExportError(UserError):
    """Bad input or an unfaithful export: printed as one ``error:`` line, exit status 2."""


# ----------------------------------------------------------------------------------- arguments
def parse_format(text: str) -> str:
    fmt = text.strip().upper()
    if fmt not in FORMATS:
        raise ExportError(f"--format '{text}': expected MINDIR or ONNX")
    return fmt


def parse_batch(text: str) -> Optional[int]:
    """'dynamic' -> None; a positive integer -> that batch size."""
    if text.strip().lower() == "dynamic":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ExportError(f"--batch '{text}': expected a positive integer or 'dynamic'")
    return value


def check_out_path(out: str) -> str:
    """Fail before the (slow) export if ``out`` cannot be written."""
    out = os.path.abspath(out)
    folder = os.path.dirname(out)
    if os.path.isdir(out):
        raise ExportError(f"--out {out}: is a directory")
    if not os.path.isdir(folder):
        raise ExportError(f"--out {out}: directory {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"--out {out}: directory {folder} is not writable")
    return out


def canonical_conv_impl(conv_impl: Optional[str]) -> Optional[str]:
    """``--conv-impl`` in today's vocabulary (the layer policy's table: ``fold`` -> ``banded``,
    ``custom`` -> ``cpp``, with one DeprecationWarning); None stays None (the format's default)."""
    if conv_impl is None:
        return None
    from ..models.layers import canonical_impl
    try:
        return canonical_impl(conv_impl, "channelwise")
    except ValueError as e:
        raise ExportError(f"--conv-impl: {e}") from None


# ----------------------------------------------------------------------------------- model
def load_for_export(cfg: Any, ckpt: str, conv_impl: str, fold_bn: bool = False, fmt: str = "MINDIR") -> Any:
    """The checkpoint's :class:`~src.engine.inference.InferenceModel` (eval mode, its class names
    and data config), the network built with portable layers: ``conv_impl`` for channelwise
    convolutions, ``native`` for the spatial stem convolution (im2col's ops.pad has no ONNX
    converter), and for general/grouped convolutions ``native`` (ONNX ``Conv`` with ``group``) or
    ``split`` (MINDIR: per-group convolutions, which every MindSpore backend runs, Ascend
    included) instead of the CPU-only C++ kernels."""
    from ..engine.inference import load_inference_model
    conv_impl = canonical_conv_impl(conv_impl)
    if conv_impl == "cpp":  # the CPU inference network as it is (device defaults: C++ kernels)
        return load_inference_model(cfg, ckpt=ckpt, fold_bn=fold_bn)
    impls = {"channelwise": conv_impl, "spatial": "native", "pointwise": "native",
             "grouped": "native" if fmt == "ONNX" else "split"}
    return load_inference_model(cfg, ckpt=ckpt, fold_bn=fold_bn, impls=impls)


def build_for_export(cfg: Any, ckpt: str, conv_impl: str, fold_bn: bool = False, fmt: str = "MINDIR") -> Any:
    """The network of :func:`load_for_export`."""
    return load_for_export(cfg, ckpt, conv_impl, fold_bn=fold_bn, fmt=fmt).net


def reference_scores(net: Any, clip: np.ndarray) -> np.ndarray:
    import mindspore as ms
    return net(ms.Tensor(clip)).asnumpy()


# ----------------------------------------------------------------------------------- MINDIR
def export_mindir(net: Any, shape: Tuple[Optional[int], int, int, int, int], tmp: str,
                  metadata: Optional[Dict[str, Any]] = None) -> None:
    """``ms.export``; ``metadata`` goes into the file's ``user_info`` as JSON (MindSpore's
    ``custom_func`` hook; ``mindspore.load`` ignores it)."""
    import json
    import mindspore as ms
    from ..engine.inference import METADATA_KEY

    def store(proto: Any) -> None:
        proto.user_info[METADATA_KEY] = json.dumps(metadata)

    stem = tmp[: -len(".mindir")]
    ms.export(net, ms.Tensor(shape=list(shape), dtype=ms.float32), file_name=stem, file_format="MINDIR",
              **({"custom_func": store} if metadata else {}))
    if not os.path.isfile(tmp):
        raise ExportError(f"MindSpore did not write {tmp}")


def run_mindir(path: str, clip: np.ndarray) -> np.ndarray:
    """Scores of a MINDIR file the way deployment loads it: ``mindspore.load`` + ``nn.GraphCell``."""
    import mindspore as ms
    from mindspore import nn
    graph = nn.GraphCell(ms.load(path))
    return graph(ms.Tensor(clip)).asnumpy()


# ----------------------------------------------------------------------------------- ONNX
def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install onnx onnxruntime") from None
    return onnx


def check_onnx_head(net: Any, frames: int, crop: int) -> None:
    """Refuse clips the model says its ONNX graph cannot take (``VideoClassifier.export_problem``)."""
    problem = net.export_problem((3, frames, crop, crop), "ONNX")
    if problem:
        raise ExportError(f"ONNX: {problem}")


def _ms_export_onnx(net: Any, batch: int, shape: Tuple[int, int, int, int], path: str) -> Any:
    import mindspore as ms
    onnx = _import_onnx()
    dummy = np.zeros((batch,) + tuple(shape), np.float32)
    ms.export(net, ms.Tensor(dummy), file_name=path[: -len(".onnx")], file_format="ONNX")
    model = onnx.load(path)
    os.remove(path)
    return model


def fix_conv_pads(model: Any) -> int:
    """Reorder Conv ``pads`` from MindSpore's per-axis (begin, end) pairs to ONNX's begins-then-ends.

    Returns how many Conv nodes changed (those whose padding differs between axes).
    """
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        for attr in node.attribute:
            if attr.name == "pads" and len(attr.ints) % 2 == 0:
                pairs = list(attr.ints)
                fixed = pairs[0::2] + pairs[1::2]
                if fixed != pairs:
                    attr.ints[:] = fixed
                    changed += 1
    return changed


def _constants(model: Any) -> Dict[str, np.ndarray]:
    from onnx import numpy_helper
    out = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    out[node.output[0]] = numpy_helper.to_array(attr.t)
    return out


def make_batch_dynamic(first: Any, second: Any, batches: Sequence[int]) -> int:
    """Turn ``first`` (exported at batch ``batches[0]``) into a dynamic-batch model in place.

    ``second`` is the same network exported at ``batches[1]``. Constants that differ between the
    two must be Reshape shapes whose differing entry is batch x k in both; it becomes -1. Anything
    else depending on the batch raises (the file would be wrong for other batch sizes).
    Returns the number of Reshape shapes rewritten.
    """
    from onnx import numpy_helper
    b1, b2 = batches
    nodes1, nodes2 = list(first.graph.node), list(second.graph.node)
    if [n.op_type for n in nodes1] != [n.op_type for n in nodes2]:
        raise ExportError("ONNX: the graphs exported at two batch sizes differ; use --batch N")
    c1, c2 = _constants(first), _constants(second)
    replaced: Dict[str, np.ndarray] = {}
    for n1, n2 in zip(nodes1, nodes2):
        for slot, (i1, i2) in enumerate(zip(n1.input, n2.input)):
            if i1 not in c1 or i2 not in c2 or i1 in replaced:
                continue
            v1, v2 = c1[i1], c2[i2]
            if v1.shape == v2.shape and np.array_equal(v1, v2):
                continue
            ok = (n1.op_type == "Reshape" and slot == 1 and v1.shape == v2.shape and v1.ndim == 1)
            diff = np.flatnonzero(v1 != v2) if ok else []
            if not ok or len(diff) != 1 or v1[diff[0]] % b1 or v2[diff[0]] % b2 \
                    or v1[diff[0]] // b1 != v2[diff[0]] // b2:
                raise ExportError(f"ONNX: constant '{i1}' of {n1.op_type} node '{n1.name}' depends on the "
                                  f"batch size in a way that cannot be made dynamic; use --batch N")
            fixed = v1.copy()
            fixed[diff[0]] = -1
            replaced[i1] = fixed
    for init in first.graph.initializer:
        if init.name in replaced:
            init.CopyFrom(numpy_helper.from_array(replaced[init.name], init.name))
    for node in first.graph.node:
        if node.op_type == "Constant" and node.output[0] in replaced:
            for attr in node.attribute:
                if attr.name == "value":
                    attr.t.CopyFrom(numpy_helper.from_array(replaced[node.output[0]]))
    for value in list(first.graph.input[:1]) + list(first.graph.output):
        dims = value.type.tensor_type.shape.dim
        if not dims:
            continue
        dim = dims[0]
        dim.ClearField("dim_value")
        dim.dim_param = "batch"
    del first.graph.value_info[:]  # intermediate shapes were recorded for the fixed batch
    return len(replaced)


def export_onnx(net: Any, shape: Tuple[Optional[int], int, int, int, int], tmp: str,
                metadata: Optional[Dict[str, Any]] = None) -> Dict[str, int]:
    """The ONNX file (Conv pads fixed, batch made dynamic when ``shape[0]`` is None);
    ``metadata`` goes into its ``metadata_props`` as JSON."""
    import json
    onnx = _import_onnx()
    clip_shape = tuple(shape[1:])
    if shape[0] is None:
        models = [_ms_export_onnx(net, b, clip_shape, tmp) for b in ONNX_BATCHES]
        pads = [fix_conv_pads(m) for m in models][0]
        reshapes = make_batch_dynamic(models[0], models[1], ONNX_BATCHES)
        model = models[0]
    else:
        model = _ms_export_onnx(net, shape[0], clip_shape, tmp)
        pads, reshapes = fix_conv_pads(model), 0
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # onnx.checker.ValidationError
        raise ExportError(f"ONNX: the exported model is invalid: {str(e).splitlines()[0]}") from None
    if metadata:
        from ..engine.inference import METADATA_KEY
        onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(metadata)})
    onnx.save(model, tmp)
    return {"reordered_pads": pads, "dynamic_reshapes": reshapes}


def run_onnx(path: str, clip: np.ndarray) -> np.ndarray:
    """Scores of an ONNX file from onnxruntime (CPU)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("checking the ONNX file needs onnxruntime: pip install onnxruntime "
                          "(or pass --no-verify)") from None
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: clip})[0]


# ----------------------------------------------------------------------------------- driver
def export(cfg: Any, ckpt: str, fmt: str, out: str, *, batch: Optional[int], frames: int,
           crop: int, conv_impl: Optional[str] = None, verify: bool = True, seed: int = 0,
           fold_bn: bool = True, class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Export (BatchNorm folded into the convolutions unless ``fold_bn`` is False), verify
    against the unfolded checkpoint network, then publish ``out`` atomically.

    Without ``conv_impl`` the format's default channelwise formulation is tried first; a graph
    it cannot express with a dynamic batch (``banded`` needs a static T, which MaxPool3D loses when
    the batch is dynamic, as in the ShuffleNets) is exported again with ``native``.

    The file carries its metadata (:func:`~src.engine.inference.export_metadata`: class names,
    ``class_names`` or else the checkpoint's label map; input shape; the data config with this
    ``frames`` and ``crop``)."""
    conv_impl = canonical_conv_impl(conv_impl)
    kw = dict(batch=batch, frames=frames, crop=crop, verify=verify, seed=seed, fold_bn=fold_bn,
              class_names=class_names)
    if conv_impl is not None or DEFAULT_IMPL[fmt] == "native":
        return _export(cfg, ckpt, fmt, out, conv_impl=conv_impl, **kw)
    try:
        return _export(cfg, ckpt, fmt, out, conv_impl=None, **kw)
    except ExportError as e:
        if "export failed" not in str(e):
            raise
        return _export(cfg, ckpt, fmt, out, conv_impl="native", **kw)


def _export(cfg: Any, ckpt: str, fmt: str, out: str, *, batch: Optional[int], frames: int,
           crop: int, conv_impl: Optional[str] = None, verify: bool = True, seed: int = 0,
           fold_bn: bool = True, class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Export (BatchNorm folded into the convolutions unless ``fold_bn`` is False), verify
    against the unfolded checkpoint network, then publish ``out`` atomically."""
    if not os.path.isfile(ckpt):
        raise ExportError(f"{ckpt}: checkpoint not found")
    impl = canonical_conv_impl(conv_impl) or DEFAULT_IMPL[fmt]
    if impl == "cpp" and fmt != "MINDIR":
        raise ExportError("--conv-impl cpp: the C++ kernels are MindSpore ops.Custom, which only a "
                          "MINDIR can hold; use banded or native for ONNX")
    if impl == "cpp" and batch is None:
        raise ExportError("--conv-impl cpp needs a fixed --batch N: a loaded MINDIR cannot infer the "
                          "shapes of C++ kernels for a dynamic batch")
    if impl == "cpp":
        from ..models import kernels
        if kernels.library_path("channelwise") is None:
            raise ExportError("--conv-impl cpp: the C++ kernel library could not be built here "
                              "(see the warning above); use banded or native")
    model = load_for_export(cfg, ckpt, impl, fold_bn=fold_bn, fmt=fmt)
    net = model.net
    net.prepare_export(fmt)  # formulations the format's exporter converts (X3D's head pool for ONNX)
    # verified against the unfolded checkpoint network as inference runs it (no export formulations)
    reference = build_for_export(cfg, ckpt, impl, fmt=fmt) if verify else net
    if fmt == "ONNX":
        check_onnx_head(net, frames, crop)
    in_ch = int(getattr(net, "in_channels", 3))
    shape = (batch, in_ch, frames, crop, crop)
    from ..engine.inference import export_metadata
    data = model.data_config
    data = data.replace(num_frames=frames, crop_size=crop, short_side=max(data.short_side, crop), in_channels=in_ch)
    metadata = export_metadata(data, model=str(cfg["model"]["type"]), num_classes=model.num_classes,
                               class_names=class_names if class_names is not None else model.class_names,
                               input_shape=shape)
    summary: Dict[str, Any] = {"format": fmt, "conv_impl": impl, "bn_folded": fold_bn, "input": shape, "out": out,
                               "metadata": metadata}

    def export_and_verify(tmp: str) -> None:  # tmp: the partial file, renamed to ``out`` once verified
        try:
            if fmt == "MINDIR":
                export_mindir(net, shape, tmp, metadata)
            else:
                summary.update(export_onnx(net, shape, tmp, metadata))
        except (RuntimeError, ValueError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ExportError(f"{fmt} export failed: {first}") from None
        if verify:
            sizes = (1, 3) if batch is None else (batch,)
            rng = np.random.default_rng(seed)
            clip = rng.standard_normal((max(sizes),) + shape[1:]).astype(np.float32)
            expected = reference_scores(reference, clip)
            runner = run_mindir if fmt == "MINDIR" else run_onnx
            diff = 0.0
            for n in sizes:
                got = runner(tmp, clip[:n])
                if got.shape != expected[:n].shape:
                    raise ExportError(f"{fmt}: output shape {got.shape} for batch {n}, expected "
                                      f"{expected[:n].shape}; nothing written")
                diff = max(diff, float(np.abs(got - expected[:n]).max()))
            summary["max_abs_diff"] = diff
            # relative to the output's scale: probabilities (X3D) are <= 1, logits can be large
            limit = TOLERANCE[fmt] * max(1.0, float(np.abs(expected).max()))
            if not diff <= limit:
                raise ExportError(f"{fmt}: scores differ from the checkpoint by {diff:.3g} "
                                  f"(> {limit:.3g}); nothing written")
        if impl == "cpp":
            from ..models import kernels
            summary["kernel_libraries"] = kernels.libraries_in_graph(tmp)
        os.chmod(tmp, 0o644)  # ms.export leaves MINDIR read-only to its owner

    atomic_write(out, export_and_verify)
    return summary


STREAM_VERIFY_STEPS = 3  # frames the stream step is checked over (the state carried between them)


def export_stream(cfg: Any, ckpt: str, out: str, *, batch: int = 1, crop: int, conv_impl: Optional[str] = None,
                  verify: bool = True, seed: int = 0, fold_bn: bool = True,
                  class_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Export the stream step of a causal network as MINDIR (module doc), verify it over
    :data:`STREAM_VERIFY_STEPS` frames against the unfolded checkpoint network's step (logits and
    states), then publish ``out`` atomically."""
    import json
    import mindspore as ms
    from ..engine.inference import METADATA_KEY, export_metadata

    if not os.path.isfile(ckpt):
        raise ExportError(f"{ckpt}: checkpoint not found")
    impl = canonical_conv_impl(conv_impl) or DEFAULT_IMPL["MINDIR"]
    model = load_for_export(cfg, ckpt, impl, fold_bn=fold_bn)
    net = model.net
    if not getattr(net, "streamable", False):
        raise ExportError(f"--stream: model {cfg['model']['type']} is not a streamable (causal) network; "
                          f"use a stream config (model.causal: true, e.g. src/config/movinet_a0_stream.yaml)")
    step = net.stream_step()
    states = net.init_states(batch, crop, crop)
    shape = (batch, 3, 1, crop, crop)
    data = model.data_config
    data = data.replace(crop_size=crop, short_side=max(data.short_side, crop))
    metadata = export_metadata(data, model=str(cfg["model"]["type"]), num_classes=model.num_classes,
                               class_names=class_names if class_names is not None else model.class_names,
                               input_shape=shape)
    metadata["stream"] = {"state_names": list(net.state_names()),
                          "state_shapes": [list(s.shape) for s in states],
                          "state_dtypes": [str(s.asnumpy().dtype) for s in states], "chunk_frames": 1}
    summary: Dict[str, Any] = {"format": "MINDIR", "conv_impl": impl, "bn_folded": fold_bn, "input": shape,
                               "out": out, "metadata": metadata, "states": len(states)}

    def store(proto: Any) -> None:
        proto.user_info[METADATA_KEY] = json.dumps(metadata)

    def export_and_verify(tmp: str) -> None:
        try:
            ms.export(step, ms.Tensor(np.zeros(shape, np.float32)), *states, file_name=tmp[: -len(".mindir")],
                      file_format="MINDIR", custom_func=store)
        except (RuntimeError, ValueError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ExportError(f"MINDIR export failed: {first}") from None
        if not os.path.isfile(tmp):
            raise ExportError(f"MindSpore did not write {tmp}")
        if verify:
            from mindspore import nn
            reference = build_for_export(cfg, ckpt, impl)  # BatchNorm as trained (not folded)
            ref_step, graph = reference.stream_step(), nn.GraphCell(ms.load(tmp))
            frames = np.random.default_rng(seed).random((STREAM_VERIFY_STEPS,) + shape, dtype=np.float32)
            want, got = reference.init_states(batch, crop, crop), states
            diff, scale = 0.0, 1.0
            for x in frames:
                expected, actual = ref_step(ms.Tensor(x), *want), graph(ms.Tensor(x), *got)
                if len(actual) != len(expected):
                    raise ExportError(f"MINDIR: the stream step returns {len(actual)} outputs, expected "
                                      f"{len(expected)}; nothing written")
                for e, a in zip(expected, actual):
                    e, a = e.asnumpy().astype(np.float64), a.asnumpy().astype(np.float64)
                    diff, scale = max(diff, float(np.abs(a - e).max())), max(scale, float(np.abs(e).max()))
                want, got = tuple(expected[1:]), tuple(actual[1:])
            summary["max_abs_diff"] = diff
            limit = TOLERANCE["MINDIR"] * scale
            if not diff <= limit:
                raise ExportError(f"MINDIR: the stream step differs from the checkpoint by {diff:.3g} "
                                  f"(> {limit:.3g}) over {STREAM_VERIFY_STEPS} frames; nothing written")
        os.chmod(tmp, 0o644)

    atomic_write(out, export_and_verify)
    return summary


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m src.tools.export", description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True, help="training checkpoint (.ckpt) to export")
    parser.add_argument("--format", default="MINDIR", help="MINDIR (default) or ONNX")
    parser.add_argument("--out", required=True, help="file to write (replaced atomically)")
    parser.add_argument("--batch", default="dynamic", help="'dynamic' (default) or a fixed batch size")
    parser.add_argument("--frames", type=int, default=None, help="clip length T (default: the model's)")
    parser.add_argument("--crop", type=int, default=None,
                        help="crop size S (default: the test crop, infer.crop_size or the model record's)")
    parser.add_argument("--label-map", default=None,
                        help="class names to store in the file (label-map JSON or one name per line; "
                             "default: the checkpoint's label map)")
    parser.add_argument("--conv-impl", choices=CONV_IMPLS, default=None,
                        help="channelwise conv formulation (default: banded for MINDIR, native for ONNX); "
                             "cpp: MINDIR with this machine's C++ CPU kernels (fastest on CPU, not portable); "
                             "fold and custom: deprecated spellings of banded and cpp")
    parser.add_argument("--stream", action="store_true",
                        help="streamable (causal) models: export the stream step, one frame in with the "
                             "states, logits and the new states out (MINDIR; --batch: default 1)")
    parser.add_argument("--device", default="CPU", help="device used for the export (default CPU)")
    parser.add_argument("--no-fold-bn", dest="fold_bn", action="store_false",
                        help="keep BatchNorm as separate ops (default: folded into the convolutions)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the comparison of the written file with the checkpoint")
    add_config_args(parser)
    return parse_with_overrides(parser, argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    fmt = parse_format(args.format)
    batch = parse_batch(args.batch)
    out = check_out_path(args.out)
    cfg = config_from_args(args)
    from ..context import init_context
    init_context(cfg.context, args.device)
    from ..config.geometry import resolve_data_config
    data = resolve_data_config(cfg.model, cfg)  # the model record's test clip, the config's values over it
    frames = args.frames or data.num_frames
    crop = args.crop or data.crop_size
    if frames < 1 or crop < 32:
        raise ExportError(f"clip {frames} frames x {crop} crop: need >= 1 frame and crop >= 32")
    names = None
    if args.label_map:
        from ..engine.predict import read_class_names
        names = read_class_names(args.label_map)
        if len(names) != int(cfg.model.num_classes):
            raise ExportError(f"--label-map {args.label_map}: {len(names)} names, the model has "
                              f"{cfg.model.num_classes} classes")
    if args.stream:
        if fmt != "MINDIR":
            raise ExportError(f"--stream: only MINDIR holds the stream step (got --format {fmt})")
        summary = export_stream(cfg, args.ckpt, out, batch=batch or 1, crop=crop, conv_impl=args.conv_impl,
                                verify=args.verify, seed=int(cfg.context.get("seed", 0)), fold_bn=args.fold_bn,
                                class_names=names)
        n = summary["input"][0]
        print(f"format: MINDIR stream step (channelwise conv: {summary['conv_impl']}"
              f"{', BatchNorm folded' if summary['bn_folded'] else ''})")
        print(f"inputs: float32 ({n}, 3, 1, {crop}, {crop}) frame + {summary['states']} states; "
              f"outputs: ({n}, classes) logits of every frame since the zero states + the {summary['states']} "
              f"new states")
        if "max_abs_diff" in summary:
            print(f"max_abs_diff: {summary['max_abs_diff']:.3g} (logits and states over {STREAM_VERIFY_STEPS} frames)")
        print(f"wrote: {summary['out']}")
        return 0
    summary = export(cfg, args.ckpt, fmt, out, batch=batch, frames=frames, crop=crop,
                     conv_impl=args.conv_impl, verify=args.verify, seed=int(cfg.context.get("seed", 0)),
                     fold_bn=args.fold_bn, class_names=names)
    n = "N" if batch is None else str(batch)
    folded = ", BatchNorm folded" if summary["bn_folded"] else ""
    print(f"format: {fmt} (channelwise conv: {summary['conv_impl']}{folded})")
    print(f"input: float32 ({n}, {', '.join(str(d) for d in summary['input'][1:])}); "
          f"output: ({n}, classes) eval-mode scores (X3D: softmax probabilities; Efficient-3DCNNs: logits)")
    if "max_abs_diff" in summary:
        print(f"max_abs_diff: {summary['max_abs_diff']:.3g}")
    for lib in summary.get("kernel_libraries", ()):
        print(f"needs: {lib} (C++ kernels; the file runs on CPUs where this library exists)")
    meta = summary["metadata"]
    names = f"{len(meta['class_names'])} class names" if meta["class_names"] else "no class names"
    print(f"metadata: {names}, clip {meta['data_config']['num_frames']} x {meta['data_config']['sampling_rate']:g} "
          f"frames, short side {meta['data_config']['short_side']}, crop {meta['data_config']['crop_size']}, "
          f"{meta['eval_output']}")
    print(f"wrote: {summary['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
