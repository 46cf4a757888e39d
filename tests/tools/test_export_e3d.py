"""Export of the Efficient-3DCNNs family: the exporter builds portable layers (no C++ kernels),
folds BatchNorm and checks the written MINDIR / ONNX against the checkpoint network (relative to
the logits' scale) before publishing it; inference then runs from the MINDIR."""
from __future__ import annotations

import os

import numpy as np
import pytest
import yaml

import mindspore as ms  # noqa: F401  (before decord)

from src.cli import run_cli
from src.engine.checkpoint import save_checkpoint
from src.tools import export as tool

# grouped 1x1x1 + channel shuffle (ShuffleNet v1), grouped 3x3x3 (ResNeXt), depthwise with
# temporal stride + inverted residuals (MobileNetV2), Fire modules with a fixed pooling head (SqueezeNet)
FAMILIES = {
    "e3d_mobilenetv2": {"width_mult": 0.2, "num_frames": 8},
    "e3d_shufflenet": {"width_mult": 0.5, "groups": 3, "num_frames": 16},
    "e3d_resnext": {"depth": 50, "num_frames": 8},
    "e3d_squeezenet": {"version": "1.1", "num_frames": 8},
}


def _checkpoint(tmp_path, family):
    from src.models import build_model
    ms.set_device("CPU")
    model = dict(type=family, num_classes=4, crop_size=64, **FAMILIES[family])
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"model": model, "context": {"device_target": "CPU"}, "infer": {"batch_size": 2}}))
    net = build_model(model)
    rng = np.random.default_rng(0)  # non-trivial BN statistics: folding them must be exact
    for name, p in net.parameters_and_names():
        if name.endswith("moving_mean"):
            p.set_data(ms.Tensor(rng.normal(0, 0.2, p.shape).astype(np.float32)))
        elif name.endswith("moving_variance"):
            p.set_data(ms.Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
    return str(cfg), save_checkpoint(net, str(tmp_path / "m.ckpt"), epoch=0, global_step=0)


# e3d_resnext (the grouped 3x3x3 convs) takes about two minutes to export and verify: slow
@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.slow) if f == "e3d_resnext" else f
                                    for f in sorted(FAMILIES)])
def test_mindir_export_is_verified_and_published(family, tmp_path, capsys):
    cfg, ckpt = _checkpoint(tmp_path, family)
    out = tmp_path / f"{family}.mindir"
    code = run_cli(tool.main, ["--config", cfg, "--ckpt", ckpt, "--out", str(out), "--crop", "64", "--batch", "2"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "BatchNorm folded" in stdout and "max_abs_diff" in stdout and out.stat().st_size > 1000
    # the published file runs as the inference loader loads it
    from src.config import load_config
    from src.engine.inference import load_inference_model
    model = load_inference_model(load_config(cfg), mindir=str(out), batch_size=2)
    t = FAMILIES[family]["num_frames"]
    probs = model.predict(np.random.default_rng(1).standard_normal((3, 3, t, 64, 64)).astype(np.float32))
    assert probs.shape == (3, 4) and np.isfinite(probs).all()


def test_onnx_export_of_a_depthwise_model(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    cfg, ckpt = _checkpoint(tmp_path, "e3d_mobilenetv2")
    out = tmp_path / "m.onnx"
    code = run_cli(tool.main, ["--config", cfg, "--ckpt", ckpt, "--out", str(out), "--crop", "64",
                               "--format", "ONNX"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "format: ONNX" in stdout and os.path.getsize(out) > 1000
