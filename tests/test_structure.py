"""The zoo's structure: the engine and tools never name a model's insides, version control holds
sources only, and every registered model follows the contract of src/models/base.py."""
from __future__ import annotations

import os
import re
import subprocess

import numpy as np
import pytest

import mindspore as ms  # noqa: F401  (before decord)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Attribute names inside the models (X3D's stages and head, the Efficient-3DCNNs' Sequential
# blocks and classifiers) and the variant tables: code outside src/models must not use them.
INTERNAL = re.compile(r"\.(res[2-5]|stem|projection|conv_5|conv_5_bn|lin_5|pool_kernel|features|banch[12]|"
                      r"layer[1-4]|fc|classifier)\b|X3D_VARIANTS|VARIANT_ARGS|head\.projection")


def _engine_files():
    files = ["train.py", "eval.py", "infer.py"]
    for sub in ("src/engine", "src/tools", "src/tools/bench"):  # not bench/torch_ref: torch networks
        for name in sorted(os.listdir(os.path.join(REPO, sub))):
            if name.endswith(".py"):
                files.append(f"{sub}/{name}")
    return files


def test_engine_tools_and_entry_points_name_no_model_internals():
    offenders = []
    for rel in _engine_files():
        with open(os.path.join(REPO, rel), encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                code = line.split("#", 1)[0]
                if INTERNAL.search(code):
                    offenders.append(f"{rel}:{lineno}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_pattern_catches_what_it_is_for():
    assert INTERNAL.search("for cell in (net.stem, net.res2):")
    assert INTERNAL.search("params = net.head.projection.trainable_params()")
    assert INTERNAL.search("from ..models.x3d import X3D_VARIANTS")
    assert not INTERNAL.search("net.trainable_for(finetune)")


def _imports_of_tests(path):
    """(line, what) for every import of the ``tests`` package in ``path``: import statements, and
    module-path strings such as ``importlib.import_module("tests.helpers.x")``."""
    import ast
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"tests(\.\w+)+", node.value):
            names = [node.value]
        found += [(node.lineno, n) for n in names if n == "tests" or n.startswith("tests.")]
    return found


def test_src_never_imports_tests():
    """An installed package has no tests/: what src/ needs (e.g. the benchmark's torch references)
    lives in src/, and tests/ imports it from there."""
    offenders = []
    for folder, _, files in os.walk(os.path.join(REPO, "src")):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                offenders += [f"{os.path.relpath(path, REPO)}:{line}: {what}" for line, what in _imports_of_tests(path)]
    assert not offenders, "\n".join(offenders)


def test_the_tests_import_check_catches_what_it_is_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import tests.helpers\nfrom tests.helpers import video\nfrom . import tests\n"
                   "MOD = 'tests.helpers.e3d_torch_ref_light'\nTEXT = 'see tests/models/test_fold.py'\n")
    assert [line for line, _ in _imports_of_tests(str(bad))] == [1, 2, 4]


def test_version_control_holds_no_build_outputs_or_logs():
    try:
        tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                                 check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    bad = [f for f in tracked if re.search(r"(\.(so|o|a|pyc|log|ckpt|mindir|onnx|key)$)|(^|/)(akg_kernel_meta|"
                                           r"kernel_meta|rank_\d+|__pycache__|build)/", f)]
    assert not bad, bad


# ----------------------------------------------------------------------------- model contract
def _models():
    from src.models import list_models
    return list_models()


def test_every_registered_model_has_a_default_record():
    from src.models import resolve_pretrained_cfg
    names = _models()
    assert {"x3d_xs", "x3d_s", "x3d_m", "x3d_l"} <= set(names)
    for name in names:
        rec = resolve_pretrained_cfg(name)
        assert rec.num_frames >= 1 and rec.crop_size >= 32 and rec.test_crop_size >= rec.crop_size // 2
        assert rec.channel_order in ("RGB", "BGR") and rec.value_range in (1.0, 255.0)
        assert len(rec.mean) == 3 and len(rec.std) == 3


def test_x3d_contract_classifier_reset_and_freezing():
    from mindspore import Tensor, nn
    from src.engine.trainer import TrainStep
    from src.models import build_model

    previous = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        net = build_model({"type": "x3d_xs", "num_classes": 5, "num_frames": 2, "crop_size": 32,
                           "width_factor": 0.5, "depth_factor": 0.5, "head_dim": 16, "dropout_rate": 0.0})
        assert net.pretrained_cfg.num_frames == 2 and net.pretrained_cfg.crop_size == 32
        assert net.get_classifier().weight.shape[0] == 5
        net.reset_classifier(3)
        assert net.num_classes == 3 and net.get_classifier().weight.shape[0] == 3
        assert set(net.classifier_names()) == {p.name for p in net.get_classifier().get_parameters()}
        x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 2, 32, 32)).astype(np.float32))
        y = Tensor(np.array([0, 1, 2, 0], np.int32))
        assert net(x).shape == (4, 3)

        frozen = {p.name: p.asnumpy().copy() for p in net.get_parameters() if p.name not in net.classifier_names()}
        head = {n: net.parameters_dict()[n].asnumpy().copy() for n in net.classifier_names()}
        params = net.trainable_for("last_layer")
        assert {p.name for p in params} == set(net.classifier_names())
        step = TrainStep(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"),
                         nn.Momentum(params, learning_rate=0.5, momentum=0.9))
        net.train_mode("last_layer")
        for _ in range(2):
            step(x, y)
        now = net.parameters_dict()
        for name, before in frozen.items():  # weights and BatchNorm statistics unchanged
            np.testing.assert_array_equal(now[name].asnumpy(), before, err_msg=name)
        assert any(not np.array_equal(now[n].asnumpy(), v) for n, v in head.items())
        with pytest.raises(Exception, match="train.finetune"):
            net.trainable_for("half")
    finally:
        ms.set_context(mode=previous)
