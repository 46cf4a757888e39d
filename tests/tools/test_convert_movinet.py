"""convert_checkpoint on the PyTorch MoViNet port's layout: a state dict saved with torch.save,
converted through the CLI with a stream config, gives the torch reference's logits
(tests/helpers/movinet_torch_ref.py); another variant is refused in one line naming both."""
from __future__ import annotations

import os

import numpy as np
import pytest

import mindspore as ms  # noqa: F401  (before decord)

from src.cli import run_cli
from src.config import CONFIG_DIR, load_config
from src.engine.checkpoint import read_checkpoint
from src.models import build_model
from src.tools import convert_checkpoint as tool

torch = pytest.importorskip("torch")
from tests.helpers import movinet_torch_ref as R  # noqa: E402

pytestmark = pytest.mark.usefixtures("pynative")


def test_stream_state_dict_converts_to_the_reference_logits(tmp_path, capsys):
    torch.set_num_threads(1)
    ref = R.randomize_movinet_(R.MoViNetRef("a0", causal=True, conv_type="2plus1d"), seed=4).eval()
    src = str(tmp_path / "modelA0_statedict_v3")
    torch.save(ref.state_dict(), src)
    out = tmp_path / "a0_stream.ckpt"
    cfg_path = os.path.join(CONFIG_DIR, "movinet_a0_stream.yaml")
    code = run_cli(tool.main, ["--src", src, "--config", cfg_path, "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "layout: movinet_port" in stdout and "451 read, 62 num_batches_tracked dropped, 389 parameters" in stdout
    params, meta = read_checkpoint(str(out))
    assert "value_range: 1.0" in meta["config_yaml"] and "causal: true" in meta["config_yaml"]
    net = build_model(load_config(cfg_path).model)
    ms.load_param_into_net(net, params, strict_load=True)
    net.set_train(False)
    x = np.random.default_rng(7).random((1, 3, 4, 40, 40), dtype=np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    got = net(ms.Tensor(x)).asnumpy()
    assert expected.std() > 0.1
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


@pytest.mark.parametrize("arch,causal,config,message", [
    ("a0", False, "movinet_a0_stream.yaml",
     "the checkpoint is a MoViNet-A0 base (3d) but the config builds MoViNet-A0 stream (2plus1d); "
     "use src/config/movinet_a0_base.yaml"),
    ("a1", True, "movinet_a0_stream.yaml",
     "the checkpoint is a MoViNet-A1 stream (2plus1d) but the config builds MoViNet-A0 stream (2plus1d); "
     "use src/config/movinet_a1_stream.yaml"),
])
def test_another_variant_is_refused_in_one_line(arch, causal, config, message, tmp_path, capsys):
    ref = R.MoViNetRef(arch, causal=causal, conv_type="2plus1d" if causal else "3d")
    src = str(tmp_path / "other.pth")
    torch.save(ref.state_dict(), src)
    code = run_cli(tool.main, ["--src", src, "--config", os.path.join(CONFIG_DIR, config),
                               "--out", str(tmp_path / "o.ckpt")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err == f"error: {src}: {message}"
    assert not (tmp_path / "o.ckpt").exists()
