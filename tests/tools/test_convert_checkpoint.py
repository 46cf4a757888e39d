"""Published-weight conversion: logit parity with torch references, strictness, error messages.

The reference models are pytorchvideo's real X3D-XS (4 frames; crop 64 instead of 160 to stay
fast - the crop only sets the head's pooling window, every layer and shape is XS's) with all
weights and BN statistics randomised. The SlowFast layout is checked numerically too: the same
pytorchvideo module gets the extra res2 block-0 shortcut BN that SlowFast has, and its state is
renamed to SlowFast's keys.
"""
from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import mindspore as ms  # noqa: E402

from src.config import CONFIG_DIR, load_config  # noqa: E402
from src.models import build_model  # noqa: E402
from src.cli import run_cli  # noqa: E402
from src.engine.checkpoint import read_checkpoint  # noqa: E402
from src.models import x3d_weights  # noqa: E402
from src.models.x3d_weights import BN_EPS, ConversionError, convert_state  # noqa: E402
from src.tools import convert_checkpoint as tool  # noqa: E402

torch = pytest.importorskip("torch")
torch.set_num_threads(2)
from tests.helpers import torch_ref  # noqa: E402

torch_ref.stub_torchvision()
pytest.importorskip("pytorchvideo.models.x3d")

XS = os.path.join(CONFIG_DIR, "x3d_xs.yaml")
FRAMES, CROP = 4, 64  # X3D-XS clip length; reduced crop (pool window 2x2 instead of 5x5)
TOL = 1e-4


def run(capsys, *args):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    code = run_cli(tool.main, [str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def cli_args(src, out, *extra):
    return ["--src", src, "--out", out, "--config", XS, "--set", f"model.crop_size={CROP}", *extra]


def our_net(ckpt, **kwargs):
    net = build_model(load_config(XS).model, crop_size=CROP, **kwargs)
    params, meta = read_checkpoint(str(ckpt))  # weights, plus the resolved config as metadata
    assert "model:" in meta["config_yaml"]
    not_loaded, unused = ms.load_param_into_net(net, params, strict_load=True)
    assert not not_loaded and not unused
    net.set_train(False)
    return net


@pytest.fixture(scope="module", autouse=True)
def cpu_pynative():
    ms.set_device("CPU")
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)  # a few single forwards: no graph compilation
    yield
    ms.set_context(mode=previous)


@pytest.fixture(scope="module")
def pv_model():
    return torch_ref.randomize_(torch_ref.pytorchvideo_x3d(frames=FRAMES, crop=CROP), seed=0)


@pytest.fixture(scope="module")
def pv_file(pv_model, tmp_path_factory):
    """The model in pytorchvideo hub form: {"model_state": state_dict}."""
    path = tmp_path_factory.mktemp("pv") / "X3D_XS.pyth"
    torch.save({"model_state": pv_model.state_dict()}, path)
    return str(path)


@pytest.fixture(scope="module")
def sf_model():
    model = torch_ref.pytorchvideo_x3d(frames=FRAMES, crop=CROP, slowfast_shortcut_bn=True)
    return torch_ref.randomize_(model, seed=1)


@pytest.fixture(scope="module")
def sf_file(sf_model, tmp_path_factory):
    """The SlowFast-structured model saved as SlowFast does, under SlowFast's key names."""
    path = tmp_path_factory.mktemp("sf") / "x3d_xs.pyth"
    torch.save({"epoch": 300, "model_state": torch_ref.slowfast_state(sf_model.state_dict()),
                "optimizer_state": {}, "cfg": torch_ref.slowfast_cfg(FRAMES, CROP)}, path)
    return str(path)


@pytest.fixture(scope="module")
def target():
    net = build_model(load_config(XS).model, crop_size=CROP)
    return {name: tuple(p.shape) for name, p in net.parameters_and_names()}


def torch_out(model, clip):
    with torch.no_grad():
        return model(torch.from_numpy(clip)).numpy()


def clip(n, size, seed):
    return np.random.default_rng(seed).standard_normal((n, 3, FRAMES, size, size), dtype=np.float32)


# ----------------------------------------------------------------------------------- parity
def test_pytorchvideo_checkpoint_gives_the_same_logits(pv_model, pv_file, tmp_path, capsys):
    out = tmp_path / "x3d_xs.ckpt"
    code, stdout, err = run(capsys, *cli_args(pv_file, out, "--verify"))
    assert code == 0, err
    assert "layout: pytorchvideo" in stdout
    assert "identity BN (absent in the source): res2.0.branch1_bn" in stdout
    assert float(re.search(r"max_abs_diff: (\S+)", stdout).group(1)) <= TOL
    # Independent check: a 96x96 clip gives a 2x2 grid of head positions, averaged by both models.
    x = clip(1, 96, seed=5)
    expected = torch_out(pv_model, x)
    assert expected.std() > 0.5  # non-trivial logits: the tolerance means something
    net = our_net(out, head_activation="none")
    features = net.forward_features(ms.Tensor(x))
    got = net.head(features).asnumpy()
    assert np.max(np.abs(got - expected)) <= TOL
    # The default softmax head (per position, then averaged), as used for evaluation, matches
    # pytorchvideo's default Softmax head. PyNative mode reads the flag at run time.
    net.head.softmax = True
    probs = net.head(features).asnumpy()
    pv_softmax = torch_ref.pytorchvideo_x3d(frames=FRAMES, crop=CROP, head_activation=torch.nn.Softmax)
    pv_softmax.load_state_dict(pv_model.state_dict())
    np.testing.assert_allclose(probs, torch_out(pv_softmax, x), atol=1e-6, rtol=0)
    assert not np.allclose(probs, got, atol=1e-3)
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_slowfast_checkpoint_gives_the_same_logits(sf_model, sf_file, tmp_path, capsys):
    out = tmp_path / "x3d_xs.ckpt"
    code, stdout, err = run(capsys, *cli_args(sf_file, out))  # layout detected from the keys
    assert code == 0, err
    assert "layout: slowfast" in stdout and "identity BN" not in stdout
    x = clip(2, CROP, seed=7)
    expected = torch_out(sf_model, x)
    got = our_net(out, head_activation="none")(ms.Tensor(x)).asnumpy()
    assert np.max(np.abs(got - expected)) <= TOL
    # The shortcut BN's statistics matter: without it the torch model is far from ours.
    block = sf_model.blocks[1].res_blocks[0]
    bn, block.branch1_norm = block.branch1_norm, None
    try:
        assert np.max(np.abs(got - torch_out(sf_model, x))) > 1e-2
    finally:
        block.branch1_norm = bn


# ----------------------------------------------------------------------------------- mapping
def _numpy_state(model):
    return {k: v.numpy() for k, v in model.state_dict().items()}


def test_mapping_swaps_stem_names_renames_bn_and_fills_an_exact_identity(pv_model, target):
    state = _numpy_state(pv_model)
    params, info = convert_state(state, target)
    assert info["layout"] == "pytorchvideo" and list(params) == list(target)
    assert info["dropped"] == sum(k.endswith("num_batches_tracked") for k in state)
    # pytorchvideo's conv_t is the spatial conv, conv_xy the temporal one
    np.testing.assert_array_equal(params["stem.conv_xy.weight"], state["blocks.0.conv.conv_t.weight"])
    np.testing.assert_array_equal(params["stem.conv_t.weight"], state["blocks.0.conv.conv_xy.weight"])
    np.testing.assert_array_equal(params["res4.3.branch2.b_bn.moving_variance"],
                                  state["blocks.3.res_blocks.3.branch2.norm_b.0.running_var"])
    np.testing.assert_array_equal(params["res2.0.branch2.se.fc2.bias"],
                                  state["blocks.1.res_blocks.0.branch2.norm_b.1.block.2.bias"])
    assert info["identity_bn"] == ["res2.0.branch1_bn"]
    assert (params["res2.0.branch1_bn.gamma"] == 1).all() and (params["res2.0.branch1_bn.beta"] == 0).all()
    assert (params["res2.0.branch1_bn.moving_mean"] == 0).all()
    assert np.allclose(params["res2.0.branch1_bn.moving_variance"] + BN_EPS, 1.0, rtol=0, atol=1e-7)


def test_mapping_is_strict_about_leftovers_on_both_sides(pv_model, target):
    state = _numpy_state(pv_model)
    state["blocks.5.pool.post_norm.weight"] = np.ones(2048, np.float32)  # bn_lin5_on model
    del state["blocks.2.res_blocks.1.branch2.conv_a.weight"]
    with pytest.raises(ConversionError) as e:
        convert_state(state, target, where="ck.pyth")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("ck.pyth (pytorchvideo layout)")
    assert "1 checkpoint tensor(s) have no place in the model: blocks.5.pool.post_norm.weight" in msg
    assert "1 model parameter(s) are not in the checkpoint: res3.1.branch2.a.weight" in msg
    # a SlowFast file must not lose its shortcut BN silently (no identity fill for SlowFast)
    sf = {k: v.numpy() for k, v in torch_ref.slowfast_state(pv_model.state_dict()).items()}
    with pytest.raises(ConversionError, match=r"res2\.0\.branch1_bn\.moving_mean"):
        convert_state(sf, target)


# ----------------------------------------------------------------------------------- errors
def test_large_variant_into_an_xs_config_names_the_leftovers(tmp_path, capsys):
    src = tmp_path / "X3D_L.pyth"
    large = torch_ref.pytorchvideo_x3d(frames=16, crop=312, depth_factor=5.0)
    torch.save({"model_state": large.state_dict()}, src)
    code, _, err = run(capsys, *cli_args(src, tmp_path / "o.ckpt"))
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert "checkpoint tensor(s) have no place in the model: blocks.1.res_blocks.3." in err
    assert "blocks per stage [5, 10, 25, 15] = X3D-L" in err and "config builds [3, 5, 11, 7]" in err
    assert not (tmp_path / "o.ckpt").exists()


def test_wrong_class_count_names_the_key_and_both_shapes(pv_file, tmp_path, capsys):
    code, _, err = run(capsys, *cli_args(pv_file, tmp_path / "o.ckpt", "model.num_classes=10"))
    assert code == 2
    assert ("blocks.5.proj.weight -> head.projection.weight: checkpoint shape (400, 2048), "
            "model shape (10, 2048)") in err
    assert "set model.num_classes=400" in err


def test_slowfast_cfg_of_another_variant_is_rejected(sf_model, tmp_path, capsys):
    src = tmp_path / "x3d_m.pyth"  # same parameter shapes as XS; only its cfg tells them apart
    torch.save({"model_state": torch_ref.slowfast_state(sf_model.state_dict()),
                "cfg": torch_ref.slowfast_cfg(16, 224)}, src)
    code, _, err = run(capsys, *cli_args(src, tmp_path / "o.ckpt"))
    assert code == 2
    assert "trained on 16 frames at crop 224 (its cfg), the config builds 4 frames at crop 64" in err


def test_truncated_corrupt_missing_and_unknown_files(pv_file, tmp_path, capsys):
    truncated = tmp_path / "truncated.pyth"
    data = open(pv_file, "rb").read()
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = tmp_path / "corrupt.pyth"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    for path in (truncated, corrupt):
        code, _, err = run(capsys, *cli_args(path, tmp_path / "o.ckpt"))
        assert code == 2 and err.startswith(f"error: {path}: cannot read it as a torch checkpoint")
    code, _, err = run(capsys, *cli_args(tmp_path / "nope.pyth", tmp_path / "o.ckpt"))
    assert code == 2 and "nope.pyth: no such checkpoint file" in err
    unknown = tmp_path / "other.pyth"
    torch.save({"model_state": {"layer1.0.conv1.weight": torch.zeros(1)}}, unknown)
    code, _, err = run(capsys, *cli_args(unknown, tmp_path / "o.ckpt"))
    assert code == 2 and "cannot tell the layout" in err and "layer1.0.conv1.weight" in err
    code, _, err = run(capsys, *cli_args(pv_file, tmp_path / "o.ckpt", "--from", "slowfast"))
    assert code == 2 and "--from slowfast, but its keys are pytorchvideo's" in err
    assert not (tmp_path / "o.ckpt").exists()


class _Payload:
    """Pickles to ``os.system(command)``: a shell command that writes a marker file if it is ever run."""

    def __init__(self, marker):
        self.command = f"echo ran > {marker}"

    def __reduce__(self):
        return (os.system, (self.command,))


def _save_evil(fmt, payload, path):
    state = {"model_state": {"blocks.0.conv.conv_t.weight": torch.zeros(1), "x": payload}}
    if fmt == "zip":
        torch.save(state, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    elif fmt == "legacy":
        torch.save(state, path, _use_new_zipfile_serialization=False)
    else:  # a bare pickle, protocol 0 (text) or the default
        path.write_bytes(pickle.dumps(state, protocol=0 if fmt == "pickle0" else pickle.DEFAULT_PROTOCOL))


@pytest.mark.parametrize("fmt", ["zip", "legacy", "pickle0", "pickle"])
def test_a_pickle_that_would_run_code_is_refused_unrun_without_weights_only_advice(fmt, tmp_path, capsys):
    marker = tmp_path / "executed"
    payload = _Payload(marker)
    # the payload is real: unpickling it without restrictions runs the command (checked, then undone)
    pickle.loads(pickle.dumps(payload))
    assert marker.read_text() == "ran\n"
    marker.unlink()
    src = tmp_path / f"evil.{fmt}.pyth"
    _save_evil(fmt, payload, src)
    code, out, err = run(capsys, *cli_args(src, tmp_path / "o.ckpt"))
    assert not marker.exists()
    assert code == 2 and out == ""
    system = os.system.__module__ + ".system"  # posix.system on Linux
    assert err == (f"error: {src}: holds Python objects other than tensors ({system}); refusing to unpickle it "
                   f"(a checkpoint to convert holds only tensors, numbers, strings and containers)\n")
    assert "weights_only" not in err and "corrupt" not in err
    assert not (tmp_path / "o.ckpt").exists()


def test_a_pickle_torch_refuses_is_named_as_refused_without_weights_only_advice(tmp_path, capsys):
    # no code in it, but a pickle feature (protocol 4 framing in a bare pickle) that torch's
    # tensor-only unpickler does not take: the refusal is reported, not the advice to lift it
    src = tmp_path / "plain.pyth"
    src.write_bytes(pickle.dumps({"model_state": {"x": 1}}, protocol=4))
    code, _, err = run(capsys, *cli_args(src, tmp_path / "o.ckpt"))
    assert code == 2
    assert err.startswith(f"error: {src}: torch's tensor-only reader refused it (")
    assert err.endswith("); refusing to unpickle it with a less strict one\n")
    assert "weights_only" not in err and err.count("\n") == 1


def test_missing_torch_is_one_clear_line(pv_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    code, _, err = run(capsys, *cli_args(pv_file, tmp_path / "o.ckpt"))
    assert code == 2
    assert err == ("error: converting .pyth checkpoints needs PyTorch, which is not a runtime dependency: "
                   "pip install torch (CPU build is enough)\n")


def test_verify_fails_when_the_converted_weights_differ(sf_file, tmp_path, capsys, monkeypatch):
    """--verify on a SlowFast file (reference: pytorchvideo + shortcut BN) catches a 0.05 error."""
    def perturbed(*args, **kwargs):
        params, info = convert_state(*args, **kwargs)
        params["res5.6.branch2.c_bn.beta"] = params["res5.6.branch2.c_bn.beta"] + 0.05
        return params, info
    monkeypatch.setattr(x3d_weights, "convert_state", perturbed)
    out = tmp_path / "o.ckpt"
    code, stdout, err = run(capsys, *cli_args(sf_file, out, "--verify"))
    assert code == 2 and "max_abs_diff" in stdout
    assert "exceeds 0.0001" in err and not out.exists()


def test_cli_process_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "src.tools.convert_checkpoint", *cli_args(
        str(tmp_path / "missing.pyth"), str(tmp_path / "o.ckpt"))], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing.pyth'}: no such checkpoint file"]
