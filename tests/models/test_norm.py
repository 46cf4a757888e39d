"""``model.norm``: ``syncbn`` builds every family with the parameter names and shapes of ``bn``
(checkpoints interchangeable), with MindSpore's SyncBatchNorm operator on the run's world group in
training mode; one process means plain BatchNorm; several CPU processes are a one-line error."""
import pytest
import mindspore as ms
from mindspore.ops import operations as P
from mindspore.ops.operations import _inner_ops as inner

from src.config import ConfigError, load_config
from src.errors import UserError
from src.models import BatchNorm3d, build_model
from src.models.layers import sync_group, use_norm
from tests.helpers.training import REPO

ms.set_device("CPU")

# one small variant of every family (reduced widths: only the layer structure matters here)
FAMILIES = [
    {"type": "x3d_xs", "width_factor": 0.5, "depth_factor": 0.5, "head_dim": 32},
    {"type": "e3d_mobilenet", "width_mult": 0.5},
    {"type": "e3d_mobilenetv2", "width_mult": 0.2},
    {"type": "e3d_shufflenet", "width_mult": 0.5},
    {"type": "e3d_shufflenetv2", "width_mult": 0.25},
    {"type": "e3d_squeezenet"},
    {"type": "e3d_resnet", "depth": 10, "shortcut": "B"},
]


def _shapes(net):
    return [(p.name, tuple(p.shape)) for p in net.get_parameters()]


def _bns(net):
    return [c for _, c in net.cells_and_names() if isinstance(c, BatchNorm3d)]


@pytest.mark.parametrize("model", FAMILIES, ids=[m["type"] for m in FAMILIES])
def test_syncbn_keeps_names_and_shapes_and_swaps_the_training_operator(model):
    """Built for a 2-device GPU run (the operator is only constructed here; running it needs the
    devices): same parameters as ``bn``, every BatchNorm's training operator is SyncBatchNorm on
    the world group, the inference operator is unchanged."""
    plain = build_model(dict(model, num_classes=5))
    with use_norm("syncbn", group=("nccl_world_group", 2)):
        synced = build_model(dict(model, num_classes=5, norm="syncbn"))
    assert _shapes(synced) == _shapes(plain)
    assert len(_bns(synced)) == len(_bns(plain)) > 0
    for bn in _bns(synced):
        assert isinstance(bn.bn_train, inner.SyncBatchNorm) and bn.sync_group == ("nccl_world_group", 2)
        assert bn.bn_train.group == "nccl_world_group" and bn.bn_train.device_num == 2
        assert isinstance(bn.bn_infer, P.BatchNorm)
    for bn in _bns(plain):
        assert type(bn.bn_train) is P.BatchNorm and bn.sync_group is None


def test_one_process_syncbn_is_plain_batchnorm():
    """No communication group (one process, as eval/infer of a syncbn run's config): nothing to
    synchronise, so the layers are plain BatchNorm on any device."""
    net = build_model({"type": "e3d_mobilenet", "width_mult": 0.5, "norm": "syncbn"})
    assert all(type(bn.bn_train) is P.BatchNorm and bn.sync_group is None for bn in _bns(net))


def test_sync_group_per_device_and_the_cpu_error():
    assert sync_group("GPU", 1) is None and sync_group("CPU", 1) is None
    assert sync_group("GPU", 2) == ("nccl_world_group", 2)
    assert sync_group("Ascend", 8) == ("hccl_world_group", 8)
    with pytest.raises(UserError) as e:
        sync_group("CPU", 2)
    assert str(e.value) == ("model.norm=syncbn: SyncBatchNorm runs on GPU or Ascend (MindSpore has no CPU kernel), "
                            "this run has 2 CPU processes; use model.norm=bn")


def test_norm_is_a_checked_model_key():
    demo = f"{REPO}/src/config/demo.yaml"
    assert load_config(demo, ["model.norm=syncbn"]).model.norm == "syncbn"
    with pytest.raises(ConfigError) as e:
        load_config(demo, ["model.norm=sync"])
    assert str(e.value) == "model.norm: expected one of 'bn', 'syncbn', got 'sync' (from override 'model.norm=sync')"
