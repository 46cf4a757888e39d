"""convert_checkpoint on the Efficient-3DCNNs layout: files saved as the reference saves them
(``{epoch, arch, state_dict with module., optimizer, best_prec1}``), converted through the CLI,
give the torch reference's logits; wrong architectures and widths are refused with one line."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import mindspore as ms  # noqa: F401  (before decord)

from src.cli import run_cli
from src.config import CONFIG_DIR
from src.engine.checkpoint import read_checkpoint
from src.models import build_model
from src.tools import convert_checkpoint as tool
from tests.helpers import e3d_torch_ref_heavy as heavy
from tests.helpers import e3d_torch_ref_light as light

# (config, overrides, torch builder, reference arch string, clip frames x crop)
CASES = {
    "mobilenetv2_1.0": ("e3d_mobilenetv2.yaml", [], lambda: light.build("e3d_mobilenetv2", width_mult=1.0,
                                                                         num_classes=600), "mobilenetv2"),
    "shufflenetv2_1.0": ("e3d_shufflenetv2.yaml", [], lambda: light.build("e3d_shufflenetv2", width_mult=1.0,
                                                                           num_classes=600), "shufflenetv2"),
    "shufflenet_1.0_g3": ("e3d_shufflenet.yaml", [], lambda: light.build("e3d_shufflenet", width_mult=1.0, groups=3,
                                                                         num_classes=600), "shufflenet"),
    "squeezenet_1.1": ("e3d_squeezenet.yaml", [], lambda: heavy.squeezenet("1.1", num_classes=600), "squeezenet"),
    "resnet18_A": ("e3d_resnet18.yaml", [], lambda: heavy.resnet(18, "A", num_classes=600), "resnet"),
}


def save_reference_file(model: torch.nn.Module, arch: str, path: str) -> None:
    """What the reference's main.py writes: DataParallel keys, optimizer state, bookkeeping."""
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"epoch": 12, "arch": arch, "state_dict": state, "optimizer": {"state": {}, "param_groups": []},
                "best_prec1": 0.5}, path)


pytestmark = pytest.mark.usefixtures("pynative")  # every test here (fixture: tests/conftest.py)


@pytest.mark.parametrize("case", sorted(CASES))
def test_converted_logits_equal_the_reference(case, tmp_path, capsys):
    config, overrides, make, arch = CASES[case]
    torch.manual_seed(0)
    ref = make()
    (heavy.randomize_ if case.startswith(("squeezenet", "resnet")) else light.randomize_)(ref, seed=1)
    ref.eval()
    src = str(tmp_path / f"kinetics_{case}_RGB_16_best.pth")
    save_reference_file(ref, arch, src)
    out = tmp_path / "converted.ckpt"
    cfg_path = os.path.join(CONFIG_DIR, config)
    code = run_cli(tool.main, ["--src", src, "--config", cfg_path, "--out", str(out), *overrides])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "layout: efficient3dcnns" in stdout
    n_bn = sum(isinstance(m, torch.nn.BatchNorm3d) for m in ref.modules())
    assert f"{n_bn} num_batches_tracked dropped" in stdout

    params, meta = read_checkpoint(str(out))
    # the input convention travels with the weights: the converted file holds the resolved config
    assert "order: BGR" in meta["config_yaml"] and "value_range: 255.0" in meta["config_yaml"]
    from src.config import load_config
    net = build_model(load_config(cfg_path).model)
    ms.load_param_into_net(net, params, strict_load=True)
    net.set_train(False)
    x = np.random.default_rng(2).standard_normal((1, 3, 16, 112, 112)).astype(np.float32) * 50
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    got = net(ms.Tensor(x)).asnumpy()
    scale = np.abs(expected).max()
    assert expected.std() > 1e-3 * scale  # non-trivial logits
    assert np.abs(got - expected).max() <= 1e-4 * max(scale, 1.0), (np.abs(got - expected).max(), scale)


def test_another_architecture_or_width_is_refused_in_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    ref = light.build("e3d_mobilenetv2", width_mult=0.45, num_classes=600)
    src = str(tmp_path / "mnv2_045.pth")
    save_reference_file(ref, "mobilenetv2", src)
    cfg_path = os.path.join(CONFIG_DIR, "e3d_mobilenetv2.yaml")  # width 1.0
    code = run_cli(tool.main, ["--src", src, "--config", cfg_path, "--out", str(tmp_path / "o.ckpt")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"error: {src}: ") and "\n" not in err
    assert "features.0.0.weight (14,3,3,3,3) vs (32,3,3,3,3)" in err
    assert not (tmp_path / "o.ckpt").exists()
    # a ShuffleNetV2 file into the MobileNetV2 config: its 'arch' names the mismatch before anything else
    other = light.build("e3d_shufflenetv2", width_mult=1.0, num_classes=600)
    src2 = str(tmp_path / "snv2.pth")
    save_reference_file(other, "shufflenetv2", src2)
    code = run_cli(tool.main, ["--src", src2, "--config", cfg_path, "--out", str(tmp_path / "o.ckpt")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"error: {src2}: ") and "\n" not in err
