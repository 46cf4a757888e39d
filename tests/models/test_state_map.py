"""map_reference_state / load_reference_checkpoint_dict: renaming, dropping, and one-line refusals."""
import re

import numpy as np
import pytest
import torch

import mindspore as ms  # noqa: F401  (before anything that could import decord)
from src.errors import UserError
from src.models import build_model
from src.models.state_map import load_reference_checkpoint_dict, map_reference_state
from tests.helpers import e3d_torch_ref_heavy as R


@pytest.fixture(scope="module")
def squeeze():
    """A SqueezeNet 1.1 (5 classes) and our torch reference's randomized state dict for it."""
    net = build_model({"type": "e3d_squeezenet", "version": "1.1", "num_classes": 5})
    model = R.randomize_(R.squeezenet("1.1", num_classes=5), seed=0)
    return net, model.state_dict()


def numpy_module_state(state):
    return {"module." + k: v.numpy() for k, v in state.items()}


def expected_name(key):
    """The rename, spelled out independently: BN leaves by module name (this net's BN modules)."""
    prefix, leaf = key.rsplit(".", 1)
    is_bn = prefix.endswith("_bn") or prefix == "features.1"
    if is_bn:
        leaf = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
                "running_var": "moving_variance"}[leaf]
    return f"{prefix}.{leaf}"


def test_prefix_stripped_bn_renamed_counter_dropped(squeeze):
    net, state = squeeze
    mapped = map_reference_state(numpy_module_state(state), net, source="x.pth")
    want = {expected_name(k): v.numpy() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert len(state) == 177 and len(want) == 177 - 25  # 25 BatchNorms (stem + 3 per Fire), one counter each
    assert set(mapped) == set(want) == {n for n, _ in net.parameters_and_names()}
    for name, arr in want.items():
        np.testing.assert_array_equal(mapped[name], arr)
        assert mapped[name].dtype == np.float32
    assert "features.4.squeeze_bn.moving_variance" in mapped and "features.1.gamma" in mapped
    # without the prefix it maps the same
    bare = map_reference_state({k: v.numpy() for k, v in state.items()}, net, source="x.pth")
    assert set(bare) == set(mapped)


def one_line_error(state, net, source="x.pth"):
    with pytest.raises(UserError) as info:
        map_reference_state(state, net, source=source)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(source + ": ")
    return msg


def test_missing_key_is_named(squeeze):
    net, state = squeeze
    sd = numpy_module_state(state)
    del sd["module.features.7.expand3x3.weight"]
    msg = one_line_error(sd, net)
    assert msg.startswith("x.pth: 1 keys do not fit e3d_squeezenet (version=1.1): ")
    assert "missing features.7.expand3x3.weight" in msg


def test_extra_key_is_named(squeeze):
    net, state = squeeze
    sd = numpy_module_state(state)
    sd["module.features.15.squeeze.weight"] = np.zeros((4, 4, 1, 1, 1), np.float32)
    msg = one_line_error(sd, net)
    assert "1 keys do not fit" in msg and "unexpected features.15.squeeze.weight" in msg


def test_wrong_class_count_reports_both_shapes(squeeze):
    net, _ = squeeze
    state = numpy_module_state(R.squeezenet("1.1", num_classes=7).state_dict())
    msg = one_line_error(state, net)
    assert "2 keys do not fit" in msg
    assert "classifier.1.weight (7,512,1,1,1) vs (5,512,1,1,1)" in msg
    assert "classifier.1.bias (7,) vs (5,)" in msg


def test_another_architecture_is_refused_in_one_line():
    # ResNet-50 B and ResNeXt-50 have the same 320 key names; widths differ nearly everywhere
    with torch.device("meta"):
        ref = R.resnet(50, "B")
    state = {"module." + k: np.broadcast_to(np.float32(0), tuple(v.shape)) for k, v in ref.state_dict().items()}
    net = build_model({"type": "e3d_resnext", "depth": 50})
    msg = one_line_error(state, net, source="kinetics_resnet_50_RGB_16_best.pth")
    m = re.fullmatch(r"kinetics_resnet_50_RGB_16_best\.pth: (\d+) keys do not fit "
                     r"e3d_resnext \(depth=50, cardinality=32, shortcut=B\): (.*) and (\d+) more", msg)
    assert m, msg
    listed = m[2].split(", ")
    assert len(listed) == 6 and int(m[1]) == 6 + int(m[3])
    assert "layer1.0.conv1.weight (64,64,1,1,1) vs (128,64,1,1,1)" in listed
    # SqueezeNet 1.0 weights into a 1.1 network: the stem differs
    sq10 = numpy_module_state(R.squeezenet("1.0", num_classes=5).state_dict())
    msg = one_line_error(sq10, build_model({"type": "e3d_squeezenet", "version": "1.1", "num_classes": 5}))
    assert "features.0.weight (96,3,7,7,7) vs (64,3,3,3,3)" in msg


def test_reference_checkpoint_dict_and_bare_state(squeeze, tmp_path):
    net, state = squeeze
    path = tmp_path / "kinetics_squeezenet_RGB_16_best.pth"
    torch.save({"epoch": 12, "arch": "squeezenet", "state_dict": {"module." + k: v for k, v in state.items()},
                "optimizer": {"state": {}, "param_groups": []}, "best_prec1": 0.41}, path)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    sd = load_reference_checkpoint_dict(obj, source=str(path))
    assert len(sd) == 177 and all(isinstance(v, np.ndarray) for v in sd.values())
    np.testing.assert_array_equal(sd["module.features.0.weight"], state["features.0.weight"].numpy())
    assert sd["module.features.1.num_batches_tracked"].dtype == np.int64
    mapped = map_reference_state(sd, net, source=str(path))
    np.testing.assert_array_equal(mapped["features.1.moving_variance"], state["features.1.running_var"].numpy())
    bare = load_reference_checkpoint_dict(dict(state))
    assert set(bare) == set(state)


def test_not_a_checkpoint_is_refused():
    with pytest.raises(UserError, match=r"^w\.pth: expected a checkpoint dict or a state dict, got list$"):
        load_reference_checkpoint_dict([1, 2], source="w.pth")
    with pytest.raises(UserError, match=r"^w\.pth: 'state_dict' is a str"):
        load_reference_checkpoint_dict({"state_dict": "x"}, source="w.pth")
    with pytest.raises(UserError, match=r"^w\.pth: not a state dict \(2 entries are not tensors: epoch, arch\)"):
        load_reference_checkpoint_dict({"epoch": 3, "arch": "resnet", "w": torch.zeros(2)}, source="w.pth")
