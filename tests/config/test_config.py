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
    assert len(re.findall(r"\bepochs:", text)) <= 1  # the schedule length lives in train.epochs (or its base)
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


# ----------------------------------------------------------------------------- inheritance
def test_variant_files_hold_only_what_differs_and_resolve_completely():
    xs = load_config(os.path.join(CONFIG_DIR, "x3d_xs.yaml")).to_dict()
    for name, frames, rate, crop, test in (("x3d_s", 13, 6, 160, 182), ("x3d_m", 16, 5, 224, 256),
                                           ("x3d_l", 16, 5, 312, 356)):
        text = open(os.path.join(CONFIG_DIR, f"{name}.yaml")).read()
        assert "_base_: x3d_xs.yaml" in text
        assert len(yaml.safe_load(text)) <= 6  # a handful of sections, not a restated recipe
        cfg = load_config(os.path.join(CONFIG_DIR, f"{name}.yaml")).to_dict()
        # SlowFast configs/Kinetics/X3D_{S,M,L}.yaml: frames x rate, train crop, test short side
        for split in ("train", "eval"):
            ds = cfg["data_loader"][split]["dataset"]
            assert (ds["num_frames"], ds["sampling_rate"]) == (frames, rate)
            assert ds["type"] == "Kinetics400" and ds["target_fps"] == 30  # SlowFast DATA.TARGET_FPS
        assert cfg["data_loader"]["train"]["map"]["operations"][1] == {"type": "RandomCrop", "size": crop}
        assert (cfg["infer"]["short_side"], cfg["infer"]["crop_size"]) == (test, test)
        assert cfg["model"]["num_classes"] == 400
        assert cfg["optimizer"] == xs["optimizer"]


def test_base_chain_merges_in_order_and_rejects_loops(tmp_path):
    (tmp_path / "a.yaml").write_text("train: {epochs: 3, log_interval: 7}\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\ntrain: {epochs: 5}\n")
    cfg = load_config(str(tmp_path / "b.yaml"))
    assert (cfg.train.epochs, cfg.train.log_interval) == (5, 7)
    (tmp_path / "c.yaml").write_text("_base_: d.yaml\n")
    (tmp_path / "d.yaml").write_text("_base_: c.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(str(tmp_path / "c.yaml"))
    (tmp_path / "e.yaml").write_text("_base_: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"e.yaml: '_base_' file missing.yaml not found"):
        load_config(str(tmp_path / "e.yaml"))


# ----------------------------------------------------------------------------- geometry
def test_dataset_frames_that_contradict_the_model_are_rejected_naming_both_keys():
    path = os.path.join(CONFIG_DIR, "x3d_m.yaml")
    with pytest.raises(ConfigError) as e:
        load_config(path, ["data_loader.train.dataset.num_frames=13"])
    msg = str(e.value)
    assert "data_loader.train.dataset.num_frames is 13" in msg and "model.num_frames" in msg and "16" in msg
    assert "\n" not in msg


def test_train_crop_that_contradicts_the_model_is_rejected():
    path = os.path.join(CONFIG_DIR, "x3d_xs.yaml")
    with pytest.raises(ConfigError, match=r"operations\[0\]\.size \(RandomCrop\) is 128 but model.crop_size is 160"):
        load_config(path, ["data_loader.train.map.operations=[{type: RandomCrop, size: 128}]"])


def test_geometry_follows_model_overrides():
    cfg = load_config(os.path.join(CONFIG_DIR, "x3d_xs.yaml"), ["model.num_frames=8", "model.crop_size=96"])
    assert cfg.data_loader.train.dataset.num_frames == 8 and cfg.data_loader.eval.dataset.num_frames == 8
    assert cfg.data_loader.train.map.operations[1]["size"] == 96
    # a model type override replaces the model section; the class count follows the new record
    cfg = load_config(os.path.join(CONFIG_DIR, "x3d_xs.yaml"), ["model={type: x3d_m}"])
    assert (cfg.model.num_classes, cfg.model.num_frames, cfg.data_loader.train.dataset.num_frames) == (400, 16, 16)


def test_override_into_a_list_element_is_refused():
    with pytest.raises(ConfigError, match=r"'data_loader.train.map.operations' is a list: give the whole list"):
        load_config(os.path.join(CONFIG_DIR, "x3d_xs.yaml"), ["data_loader.train.map.operations.0.size=100"])


# ----------------------------------------------------------------------------- unreadable files
def test_unreadable_config_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"train:\n  epochs: 3 \xff\n")  # 0xff at offset 7 + 12 = 19
    with pytest.raises(ConfigError) as e:
        load_config(str(bad))
    assert str(e.value) == f"{bad}: not a UTF-8 text file (byte 0xff at offset 19); save the config as UTF-8"
    with pytest.raises(ConfigError) as e:
        load_config(str(tmp_path))
    assert str(e.value) == f"{tmp_path}: is a directory, not a config file"
    child = tmp_path / "child.yaml"
    child.write_text("_base_: bad.yaml\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not a UTF-8 text file"):
        load_config(str(child))


@pytest.mark.skipif(not os.path.exists("/proc/self/mem"), reason="needs Linux /proc")
def test_a_file_that_fails_to_read_is_a_one_line_error():
    # /proc/self/mem is a regular file whose read at offset 0 fails (EIO): a real read error
    with pytest.raises(ConfigError) as e:
        load_config("/proc/self/mem")
    assert str(e.value) == "/proc/self/mem: cannot read the config file (Input/output error)"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files without permission")
def test_a_file_without_read_permission_is_a_one_line_error(tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text("train: {epochs: 3}\n")
    path.chmod(0)
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    assert str(e.value) == f"{path}: cannot read the config file (Permission denied)"


def test_eval_section_null_keys_take_infer_and_say_so(tmp_path):
    """eval.* null = infer.* (filled at load time, so config.yaml is complete); a value taken from
    an infer key a file or override set is one note; an infer override that eval.* shadows is one
    note; the shipped configs give eval.py its own values (no note)."""
    import glob
    path = tmp_path / "old.yaml"
    path.write_text("infer: {num_clips: 2, crop_size: 100}\n")
    notes = []
    cfg = load_config(str(path), eval_notes=notes)  # model x3d_xs from defaults.yaml
    assert (cfg.eval.num_clips, cfg.eval.num_crops, cfg.eval.crop_size, cfg.eval.short_side) == (2, 3, 100, 182)
    assert (cfg.eval.batch_size, cfg.eval.fold_bn, cfg.eval.video_level) == (8, True, False)
    assert notes == ["eval.py read infer.num_clips, infer.crop_size (deprecated: set eval.num_clips, "
                     "eval.crop_size; eval.py has its own eval: section)"]
    notes = []
    cfg = load_config(str(path), ["eval.num_clips=5", "infer.num_crops=1", "eval.num_crops=3"], eval_notes=notes)
    assert (cfg.eval.num_clips, cfg.eval.num_crops, cfg.infer.num_crops) == (5, 3, 1)
    assert notes == ["eval.py read infer.crop_size (deprecated: set eval.crop_size; eval.py has its own eval: "
                     "section)", "not used by eval.py: override 'infer.num_crops=1' (eval.num_crops is 3); "
                     "set eval.* for eval.py"]
    for shipped in sorted(glob.glob(os.path.join(CONFIG_DIR, "*.yaml"))):
        if not shipped.endswith("defaults.yaml"):
            notes = []
            load_config(shipped, eval_notes=notes)
            assert notes == [], (shipped, notes)
