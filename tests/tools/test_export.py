"""MINDIR / ONNX export: scores equal to the checkpoint network's, dynamic batch, one-line errors.

A reduced X3D-XS (widths x0.5, depth x0.5, 4 x 32 x 32 clips, 5 classes) with every weight and
BN statistic randomised, so the probabilities are far from uniform and a wrong layer shows. The
reference is the checkpoint loaded into a network built with the device's default conv
formulation (the C++ ``cpp`` kernel on CPU), not the formulation the exporter uses.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mindspore as ms  # noqa: E402

from src.cli import run_cli  # noqa: E402
from mindspore import Tensor, nn  # noqa: E402

from src.engine.checkpoint import load_pretrained, save_checkpoint  # noqa: E402
from src.models import build_model  # noqa: E402
from src.tools import export as tool  # noqa: E402

MODEL = {"type": "x3d_xs", "num_classes": 5, "num_frames": 4, "crop_size": 32, "width_factor": 0.5,
         "depth_factor": 0.5, "head_dim": 16, "dropout_rate": 0.0}
CLIP = (3, 4, 32, 32)


def _randomise(net: nn.Cell, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    for p in net.get_parameters():
        if "moving_variance" in p.name or "gamma" in p.name:
            a = rng.uniform(0.5, 1.5, p.shape)
        else:
            a = rng.standard_normal(p.shape) * (0.3 if len(p.shape) > 1 else 0.1)
        p.set_data(Tensor(a.astype(np.float32)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(config path, checkpoint path, clips (3, ...), checkpoint scores for the clips)."""
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    root = tmp_path_factory.mktemp("export")
    net = build_model(dict(MODEL))
    _randomise(net)
    ckpt = str(root / "tiny.ckpt")
    save_checkpoint(net, ckpt, epoch=1, global_step=1)
    cfg = str(root / "tiny.yaml")
    with open(cfg, "w") as f:
        yaml.safe_dump({"context": {"device_target": "CPU", "seed": 0}, "model": MODEL,
                        "infer": {"crop_size": 32}}, f)
    ref = build_model(dict(MODEL))  # default formulation on this device, fresh weights
    load_pretrained(ref, ckpt)
    ref.set_train(False)
    clips = np.random.default_rng(7).standard_normal((3,) + CLIP).astype(np.float32)
    scores = ref(Tensor(clips)).asnumpy()
    assert scores.shape == (3, 5) and scores.max() > 0.5  # far from uniform: a wrong layer would show
    return cfg, ckpt, clips, scores


def _run(tiny, out, *extra):
    cfg, ckpt, _, _ = tiny
    return run_cli(tool.main, ["--config", cfg, "--ckpt", ckpt, "--out", str(out), *extra])


def test_mindir_dynamic_batch_matches_checkpoint(tiny, tmp_path, capsys):
    out = tmp_path / "x3d.mindir"
    assert _run(tiny, out, "--format", "MINDIR") == 0
    assert "max_abs_diff" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["x3d.mindir"]  # no temporary left behind
    graph = nn.GraphCell(ms.load(str(out)))
    _, _, clips, scores = tiny
    for n in (1, 3):
        got = graph(Tensor(clips[:n])).asnumpy()
        assert got.shape == (n, 5)
        np.testing.assert_allclose(got, scores[:n], rtol=0, atol=1e-5)


def test_mindir_with_cpu_kernels_matches_checkpoint_and_names_its_library(tiny, tmp_path, capsys):
    """``--conv-impl cpp``: the CPU inference network with its C++ kernels in the MINDIR; the
    file runs in another process (loaded by the one inference loader) and records which library
    it needs; a copy whose library path does not exist is refused in one line."""
    from src.config import load_config
    from src.engine.inference import load_inference_model
    from src.errors import UserError
    from src.models import kernels

    out = tmp_path / "x3d_cpu.mindir"
    assert _run(tiny, out, "--format", "MINDIR", "--conv-impl", "cpp", "--batch", "3") == 0
    printed = capsys.readouterr().out
    lib = kernels.library_path("channelwise")
    # channelwise convs; the stem's direct conv; the fused pointwise convs
    libs = sorted([lib, kernels.library_path("direct"), kernels.library_path("pointwise")])
    assert all(f"needs: {path} " in printed for path in libs) and "channelwise conv: cpp" in printed
    assert kernels.libraries_in_graph(str(out)) == libs
    cfg_path, _, clips, scores = tiny
    code = (f"import sys, numpy as np; sys.path.insert(0, {ROOT!r}); import mindspore as ms\n"
            f"from src.config import load_config\nfrom src.engine.inference import load_inference_model\n"
            f"m = load_inference_model(load_config({cfg_path!r}), mindir={str(out)!r})\n"
            f"np.save({str(tmp_path / 'got.npy')!r}, m.net(ms.Tensor(np.load({str(tmp_path / 'clips.npy')!r}))).asnumpy())")
    np.save(tmp_path / "clips.npy", clips)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "got.npy"), scores, rtol=0, atol=1e-5)

    # the same graph pointing at a library that is not there (same-length path: the file stays valid)
    digest = os.path.basename(os.path.dirname(lib))
    moved = tmp_path / "moved.mindir"
    moved.write_bytes(out.read_bytes().replace(digest.encode(), b"0" * len(digest)))
    with pytest.raises(UserError) as err:
        load_inference_model(load_config(cfg_path), mindir=str(moved))
    msg = str(err.value)
    assert "\n" not in msg and lib.replace(digest, "0" * len(digest)) in msg and "not on this machine" in msg


def test_onnx_dynamic_batch_matches_checkpoint(tiny, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "x3d.onnx"
    assert _run(tiny, out, "--format", "onnx") == 0
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    _, _, clips, scores = tiny
    for n in (1, 3):
        got = session.run(None, {session.get_inputs()[0].name: clips[:n]})[0]
        assert got.shape == (n, 5)
        np.testing.assert_allclose(got, scores[:n], rtol=0, atol=1e-4)


def test_fix_conv_pads_reorders_mindspore_pairs():
    onnx = pytest.importorskip("onnx")
    from onnx import helper
    stem_t = helper.make_node("Conv", ["x", "w"], ["y"], pads=[2, 2, 0, 0, 0, 0])  # MindSpore's order
    sym = helper.make_node("Conv", ["y", "w2"], ["z"], pads=[1, 1, 1, 1, 1, 1])
    graph = helper.make_graph([stem_t, sym], "g", [], [])
    model = helper.make_model(graph)
    assert tool.fix_conv_pads(model) == 1
    assert list(model.graph.node[0].attribute[0].ints) == [2, 0, 0, 2, 0, 0]  # ONNX: begins, then ends
    assert list(model.graph.node[1].attribute[0].ints) == [1] * 6


def _reshape_model(shape_value, op="Reshape"):
    from onnx import TensorProto, helper, numpy_helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [shape_value[0], 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    init = numpy_helper.from_array(np.array(shape_value, np.int64), "s")
    node = helper.make_node(op, ["x", "s"], ["y"], name="n")
    return helper.make_model(helper.make_graph([node], "g", [x], [y], [init]), ir_version=7,
                             opset_imports=[helper.make_opsetid("", 11)])  # as MindSpore writes


def test_make_batch_dynamic_rewrites_batch_entry_and_refuses_others():
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    first, second = _reshape_model([2 * 4]), _reshape_model([3 * 4])  # reshape(n*c) with c = 4
    assert tool.make_batch_dynamic(first, second, (2, 3)) == 1
    session = ort.InferenceSession(first.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.ones((5, 4), np.float32)})[0].shape == (20,)
    with pytest.raises(tool.ExportError, match="cannot be made dynamic"):
        tool.make_batch_dynamic(_reshape_model([2, 4], "Expand"), _reshape_model([3, 4], "Expand"), (2, 3))


def test_unfaithful_file_is_not_written(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(tool.TOLERANCE, "MINDIR", -1.0)  # any difference (even 0) is too much
    out = tmp_path / "x3d.mindir"
    assert _run(tiny, out, "--format", "MINDIR", "--batch", "2") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: MINDIR: scores differ") and "nothing written" in err and "\n" not in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("case, expected", [
    ("missing_ckpt", "checkpoint not found"),
    ("wrong_arch", "does not fit this model"),
    ("bad_format", "expected MINDIR or ONNX"),
    ("bad_batch", "positive integer or 'dynamic'"),
    ("no_dir", "does not exist"),
    ("onnx_custom", "only a MINDIR can hold"),
    ("dynamic_custom", "needs a fixed --batch N"),
    ("stream_not_causal", "--stream: model x3d_xs is not a streamable (causal) network"),
    ("stream_onnx", "--stream: only MINDIR holds the stream step"),
])
def test_cli_errors_are_one_line(tiny, tmp_path, capsys, case, expected):
    cfg, ckpt, _, _ = tiny
    args = {"--config": cfg, "--ckpt": ckpt, "--out": str(tmp_path / "m.mindir"), "--format": "MINDIR"}
    if case == "missing_ckpt":
        args["--ckpt"] = str(tmp_path / "nope.ckpt")
    elif case == "wrong_arch":
        other = str(tmp_path / "wide.yaml")
        with open(other, "w") as f:
            yaml.safe_dump({"context": {"device_target": "CPU"}, "model": dict(MODEL, width_factor=1.0),
                            "infer": {"crop_size": 32}}, f)
        args["--config"] = other
    elif case == "bad_format":
        args["--format"] = "TFLITE"
    elif case == "bad_batch":
        args["--batch"] = "0"
    elif case == "no_dir":
        args["--out"] = str(tmp_path / "missing" / "m.mindir")
    elif case == "onnx_custom":  # the deprecated spelling of cpp, still accepted
        args.update({"--format": "ONNX", "--conv-impl": "custom"})
    elif case == "dynamic_custom":
        args.update({"--conv-impl": "cpp", "--batch": "dynamic"})
    elif case == "stream_not_causal":  # the stream step itself: tests/test_stepping.py
        args["--stream"] = None
    elif case == "stream_onnx":
        args.update({"--stream": None, "--format": "ONNX"})
    code = run_cli(tool.main, [s for kv in args.items() for s in kv if s is not None])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and expected in err and "\n" not in err
    assert not os.path.exists(tmp_path / "m.mindir")


def test_cli_process_exit_code_and_no_traceback(tiny, tmp_path):
    cfg, _, _, _ = tiny
    proc = subprocess.run([sys.executable, "-m", "src.tools.export", "--config", cfg, "--ckpt",
                           str(tmp_path / "nope.ckpt"), "--format", "ONNX", "--out", str(tmp_path / "m.onnx")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert lines == [f"error: {tmp_path / 'nope.ckpt'}: checkpoint not found"]
    assert "Traceback" not in proc.stderr


def test_conv_impl_choices_are_the_policy_names_with_old_spellings_as_aliases(monkeypatch):
    """``--conv-impl`` offers the channelwise formulations of the layer policy; ``fold`` and
    ``custom`` still work, mapped by the policy's one table with a DeprecationWarning."""
    from src.models.layers import policy
    assert ("auto",) + tool.CONV_IMPLS == policy.accepted_names("channelwise")
    assert tool.DEFAULT_IMPL["MINDIR"] == "banded"
    monkeypatch.setattr(policy, "_WARNED_ALIASES", set())
    with pytest.warns(DeprecationWarning, match="'fold' is deprecated; use 'banded'"):
        assert tool.canonical_conv_impl("fold") == "banded"
    with pytest.warns(DeprecationWarning, match="'custom' is deprecated; use 'cpp'"):
        assert tool.canonical_conv_impl("custom") == "cpp"
    assert tool.canonical_conv_impl("native") == "native" and tool.canonical_conv_impl(None) is None
    with pytest.raises(tool.ExportError, match="--conv-impl: channelwise conv impl 'im2col' is not one of"):
        tool.canonical_conv_impl("im2col")


# ----------------------------------------------------------------------------- at the test crop
def _onnx_vs_checkpoint(tmp_path, model, clip, randomise, extra=None):
    """Export ``model`` (random weights) to ONNX at the config's default clip (the record's test
    crop), run it in onnxruntime and the checkpoint in MindSpore (the CPU default formulation,
    BatchNorm unfolded) on the same clips: (onnx scores, checkpoint scores, metadata)."""
    import json
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    net = build_model(dict(model))
    randomise(net)
    ckpt = str(tmp_path / "m.ckpt")
    save_checkpoint(net, ckpt, epoch=1, global_step=1, class_names=[f"k{i}" for i in range(model["num_classes"])])
    cfg = str(tmp_path / "m.yaml")
    with open(cfg, "w") as f:
        yaml.safe_dump({"context": {"device_target": "CPU"}, "model": model, **(extra or {})}, f)
    out = str(tmp_path / "m.onnx")
    assert run_cli(tool.main, ["--config", cfg, "--ckpt", ckpt, "--out", out, "--format", "ONNX"]) == 0
    ref = build_model(dict(model))
    load_pretrained(ref, ckpt)
    ref.set_train(False)
    clips = np.random.default_rng(3).standard_normal((2,) + clip).astype(np.float32)
    expected = ref(Tensor(clips)).asnumpy()
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    assert tuple(session.get_inputs()[0].shape[1:]) == clip  # exported at the test clip by default
    got = session.run(None, {session.get_inputs()[0].name: clips})[0]
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    return got, expected, json.loads(props["video_classifier"])


def test_onnx_at_the_x3d_test_crop_matches_the_checkpoint(tmp_path):
    """X3D-XS (reduced width) with train crop 160 exported at its test crop 182: the head map
    (4x6x6) is larger than the pool window (4x5x5), 2x2 pooled positions, each softmaxed and
    averaged; written without AvgPool3D. onnxruntime vs the checkpoint within 1e-5."""
    model = dict(MODEL, crop_size=160)

    def randomise(net):
        _randomise(net)
        for p in net.get_parameters():  # a moderate head: probabilities far from 0/1, so errors show
            if p.name.startswith("head.projection"):
                p.set_data(p.data * 0.05)

    got, expected, meta = _onnx_vs_checkpoint(tmp_path, model, (3, 4, 182, 182), randomise)
    assert expected.shape == (2, 5) and 0.3 < expected.max() < 0.99
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert meta["input_shape"] == [-1, 3, 4, 182, 182] and meta["class_names"] == [f"k{i}" for i in range(5)]
    assert meta["data_config"]["short_side"] == meta["data_config"]["crop_size"] == 182
    assert meta["eval_output"] == "probabilities"


def test_onnx_of_an_efficient_3dcnn_at_its_test_clip_matches_the_checkpoint(tmp_path):
    """3D MobileNetV2 (width 0.2) at its test clip 16 x 112 x 112: onnxruntime vs the checkpoint
    within 1e-5 of the logits' scale; the metadata says what the config's test pipeline feeds the
    weights (the e3d recipe's: BGR, 0..255 minus the ActivityNet mean) and that they give logits."""
    model = {"type": "e3d_mobilenetv2", "num_classes": 4, "width_mult": 0.2}
    ops = [{"type": "ShortSideScale"}, {"type": "SpatialCrops", "num_crops": 1}, {"type": "ChannelOrder"},
           {"type": "Rescale"}, {"type": "Normalize"}, {"type": "ToCTHW"}]  # as e3d_kinetics600.yaml
    extra = {"data_loader": {"eval": {"map": {"operations": ops}}}}

    def randomise(net):
        rng = np.random.default_rng(0)
        for name, p in net.parameters_and_names():
            if name.endswith("moving_mean"):
                p.set_data(Tensor(rng.normal(0, 0.2, p.shape).astype(np.float32)))
            elif name.endswith("moving_variance"):
                p.set_data(Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))

    got, expected, meta = _onnx_vs_checkpoint(tmp_path, model, (3, 16, 112, 112), randomise, extra)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * max(1.0, float(np.abs(expected).max())))
    dc = meta["data_config"]
    assert (dc["num_frames"], dc["short_side"], dc["crop_size"]) == (16, 112, 112)
    assert (dc["channel_order"], dc["value_range"], dc["std"]) == ("BGR", 255.0, [1.0, 1.0, 1.0])
    assert dc["mean"] == [114.7748, 107.7354, 99.475] and meta["eval_output"] == "logits"
