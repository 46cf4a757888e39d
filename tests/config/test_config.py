"""Config loading: schema check, missing keys, overrides, dumping."""
import os
import re

import pytest
import yaml

from src.config import CONFIG_DIR, ConfigError, dump_config, load_config

VARIANTS = ["x3d_xs", "x3d_s", "x3d_m", "x3d_l"]


def leaves(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from leaves(v)
    elif isinstance(node, list):
        for v in node:
            yield from leaves(v)
    else:
        yield node


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_configs_load_and_share_one_epoch_count(name):
    cfg = load_config(os.path.join(CONFIG_DIR, f"{name}.yaml"))
    assert cfg.model.type == name
    assert cfg.train.epochs in (256, 300)
    text = open(os.path.join(CONFIG_DIR, f"{name}.yaml")).read()
    assert len(re.findall(r"^\s*epochs:", text, re.M)) == 1  # the schedule length lives in train.epochs
    assert not [v for v in leaves(cfg.to_dict()) if isinstance(v, str) and os.path.isabs(v)]


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return str(p)


def test_unknown_key_in_file_is_rejected_with_dotted_path(tmp_path):
    path = write(tmp_path, "train:\n  epocs: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: unknown key 'train.epocs' (did you mean 'train.epochs'?)"


def test_unknown_top_level_section_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'trainer'"):
        load_config(write(tmp_path, "trainer: {epochs: 3}\n"))


def test_missing_key_raises_instead_of_none(tmp_path):
    cfg = load_config(write(tmp_path, "train: {epochs: 3}\n"))
    with pytest.raises(AttributeError):
        _ = cfg.train.no_such_key
    with pytest.raises(KeyError):
        _ = cfg["context"]["no_such_key"]


def test_dotted_overrides_parse_yaml_values(tmp_path):
    cfg = load_config(os.path.join(CONFIG_DIR, "x3d_xs.yaml"),
                      ["train.epochs=5", "model.num_classes=10", "learning_rate.base_lr=0.2",
                       "train.resume=auto", "data_loader.train.dataset.root=/tmp/x"])
    assert cfg.train.epochs == 5 and isinstance(cfg.train.epochs, int)
    assert cfg.model.num_classes == 10
    assert cfg.learning_rate.base_lr == pytest.approx(0.2)
    assert cfg.train.resume == "auto"
    assert cfg.data_loader.train.dataset.root == "/tmp/x"


def test_override_of_unknown_key_and_malformed_override():
    path = os.path.join(CONFIG_DIR, "x3d_xs.yaml")
    with pytest.raises(ConfigError, match=r"override 'trian.epochs=3': unknown key 'trian' \(did you mean 'train'\?\)"):
        load_config(path, ["trian.epochs=3"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(path, ["train.epochs"])


def test_component_type_change_replaces_its_mapping(tmp_path):
    path = write(tmp_path, "learning_rate: {type: constant, base_lr: 0.5}\n")
    cfg = load_config(path)
    assert cfg.learning_rate.to_dict() == {"type": "constant", "base_lr": 0.5}


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    path = write(tmp_path, "train:\n  epochs: [1, 2\n")
    with pytest.raises(ConfigError, match=r"c.yaml \(line \d+\): invalid YAML"):
        load_config(path)


def test_dump_round_trips(tmp_path):
    cfg = load_config(os.path.join(CONFIG_DIR, "x3d_m.yaml"), ["train.epochs=7"])
    out = tmp_path / "out" / "config.yaml"
    dump_config(cfg, str(out))
    again = load_config(str(out))
    assert again.to_dict() == cfg.to_dict()
    assert yaml.safe_load(out.read_text())["train"]["epochs"] == 7
