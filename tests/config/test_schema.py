"""The typed, ranged config schema: every key has a type, every wrong value is one line.

The expected lines are written out here (value as the user typed it, the source), not taken from
the schema's own describe()."""
from __future__ import annotations

import os

import pytest
import yaml

import mindspore  # noqa: F401  (before the data modules: decord loads after MindSpore)
from src.config import CONFIG_DIR, DEFAULTS, ConfigError, load_config
from src.config import schema as sc

XS = os.path.join(CONFIG_DIR, "x3d_xs.yaml")
# arguments the entry points pass at run time (never config keys)
RUNTIME_ARGS = {"optimizers": {"params", "learning_rate"},
                "lr_schedules": {"epochs", "steps_per_epoch", "global_batch_size"},
                "datasets": {"class_names", "config_key"}}


def _defaults():
    with open(DEFAULTS, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _component_nodes(cfg):
    """(dotted path, registry, mapping) of every component of a plain config."""
    for path, reg in sc.COMPONENTS.items():
        node = cfg
        for part in path.split("."):
            node = node[part]
        yield path, reg, node
    for path, reg in sc.COMPONENT_LISTS.items():
        node = cfg
        for part in path.split("."):
            node = node[part]
        for i, item in enumerate(node):
            yield f"{path}[{i}]", reg, item


# ----------------------------------------------------------------------------- coverage
def test_every_key_of_defaults_yaml_has_a_declared_type():
    cfg = _defaults()
    untyped = [k for k in sc.leaf_keys(cfg) if k not in sc.SCHEMA]
    for path, reg, node in _component_nodes(cfg):
        specs = sc.builder_specs(reg, node["type"], sc._registry(reg).get(node["type"]))
        untyped += [f"{path}.{k}" for k in node if k != "type" and specs.get(k) is None]
    assert not untyped, ("keys of src/config/defaults.yaml without a declared type (add them to SCHEMA in "
                         f"src/config/schema.py, or a type hint on the builder): {', '.join(untyped)}")


def test_every_declared_key_exists_in_defaults_yaml():
    present = set(sc.leaf_keys(_defaults()))
    stale = sorted(set(sc.SCHEMA) - present)
    assert not stale, f"SCHEMA keys that defaults.yaml no longer has: {', '.join(stale)}"


def test_every_argument_of_every_zoo_component_has_a_type():
    missing = []
    for reg in ("models", "datasets", "transforms", "losses", "optimizers", "lr_schedules"):
        registry = sc._registry(reg)
        for name in registry:
            builder = registry.get(name)
            if not builder.__module__.startswith("src."):
                continue  # MindSpore's own classes, registered by name, check their arguments
            for arg, spec in sc.builder_specs(reg, name, builder).items():
                if spec is None and arg not in RUNTIME_ARGS.get(reg, ()):
                    missing.append(f"{reg}/{name}.{arg}")
    assert not missing, f"component arguments without a usable type hint: {', '.join(missing)}"


# ----------------------------------------------------------------------------- plain keys
# value (as typed on the command line) -> how the error shows it
WRONG_TYPE = {"int": [("abc", "'abc'"), ("1.5", "1.5"), ("true", "true"), ("null", "null")],
              "float": [("abc", "'abc'"), ("true", "true"), ("[1]", "[1]"), ("null", "null")],
              "bool": [("1", "1"), ("maybe", "'maybe'"), ("null", "null")],
              "str": [("5", "5"), ("[a]", "[a]")],
              "any": [("nope", "'nope'"), ("[1]", "[1]")],
              "list": [("abc", "'abc'"), ("5", "5"), ("[true]", "[true]")]}


def _out_of_range(spec):
    """Values just outside the declared range (by hand from lo/hi), as (typed, shown)."""
    vals = []
    if spec.lo is not None:
        v = spec.lo - 1 if spec.kind == "int" else spec.lo - 0.5
        vals.append(v)
    if spec.hi is not None:
        vals.append(spec.hi + 1 if spec.kind == "int" else spec.hi + 0.5)
    if spec.lo_open:
        vals.append(spec.lo)
    if spec.hi_open:
        vals.append(spec.hi)
    return [(repr(v), repr(v)) for v in vals]


def _bad_values(spec):
    bad = [(t, s) for t, s in WRONG_TYPE[spec.kind] if not (t == "null" and spec.nullable)]
    return bad + _out_of_range(spec)


CASES = [(key, typed, shown) for key, spec in sc.SCHEMA.items() if key in set(sc.leaf_keys(_defaults()))
         for typed, shown in _bad_values(spec)]


def test_the_walk_covers_ranges_and_choices():
    keys = {k for k, _, _ in CASES}
    assert keys == set(sc.SCHEMA) & set(sc.leaf_keys(_defaults()))
    assert ("train.epochs", "0", "0") in CASES and ("data_loader.max_bad_fraction", "1.5", "1.5") in CASES


@pytest.mark.parametrize("key,typed,shown", CASES)
def test_every_plain_key_refuses_a_wrong_type_and_an_out_of_range_value(key, typed, shown):
    text = f"{key}={typed}"
    with pytest.raises(ConfigError) as e:
        load_config(XS, [text], resolve=False)
    msg = str(e.value)
    assert msg.startswith(f"{key}: expected "), msg
    assert msg.endswith(f", got {shown} (from override '{text}')"), msg
    assert "\n" not in msg


@pytest.mark.parametrize("key,typed,expected,shown", [
    ("train.epochs", "1.5", "int >= 1", "1.5"),
    ("train.epochs", "-1", "int >= 1", "-1"),
    ("context.mode", "2", "one of 0, 1", "2"),
    ("context.mode", "0.0", "one of 0, 1", "0.0"),
    ("train.finetune", "all", "one of 'complete', 'last_layer'", "'all'"),
    ("data_loader.max_bad_fraction", "-0.1", "float in [0, 1]", "-0.1"),
    ("infer.short_side", "0", "int >= 1 or null", "0"),
    ("train.progress_bar", "0", "bool (true or false)", "0"),
])
def test_the_expectation_is_spelled_out(key, typed, expected, shown):
    with pytest.raises(ConfigError) as e:
        load_config(XS, [f"{key}={typed}"], resolve=False)
    assert str(e.value) == f"{key}: expected {expected}, got {shown} (from override '{key}={typed}')"


def test_good_values_pass_ints_stay_ints_and_nullable_keys_stay_nullable():
    cfg = load_config(XS, ["train.epochs=3", "learning_rate.base_lr=1", "infer.short_side=null",
                           "train.resume=null", "learning_rate.reference_batch_size=null",
                           "context.device_target=cpu", "data_loader.max_bad_fraction=1",
                           "model.num_classes=null", "infer.num_crops=1"])
    assert cfg.train.epochs == 3 and type(cfg.train.epochs) is int
    assert cfg.learning_rate.base_lr == 1  # a YAML int where a float is expected
    assert cfg.learning_rate.reference_batch_size is None and cfg.train.resume is None
    assert cfg.infer.short_side == 182  # null: from the model record (X3D test short side)
    assert cfg.model.num_classes == 400


def test_a_value_from_a_file_names_the_file_and_a_base_file_its_own(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("train:\n  log_interval: 2.5\n")
    child = tmp_path / "child.yaml"
    child.write_text("_base_: base.yaml\ntrain:\n  epochs: 4\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(child), resolve=False)
    assert str(e.value) == f"train.log_interval: expected int >= 1, got 2.5 (from {base})"
    with pytest.raises(ConfigError) as e:
        load_config(str(child), ["train.log_interval=3", "train.epochs=eight"], resolve=False)
    assert str(e.value) == "train.epochs: expected int >= 1, got 'eight' (from override 'train.epochs=eight')"


def test_a_float_written_without_a_decimal_point_gets_a_hint():
    with pytest.raises(ConfigError) as e:
        load_config(XS, ["infer.window_seconds=1e1"], resolve=False)
    assert str(e.value) == ("infer.window_seconds: expected float >= 0, got '1e1' (from override "
                            "'infer.window_seconds=1e1'); YAML reads 1e1 as text, write it with a decimal "
                            "point (e.g. 1.0e-4)")


# ----------------------------------------------------------------------------- components
def _bad_component_values(spec):
    by_kind = {"int": [("abc", "'abc'"), (1.5, "1.5"), (True, "true")], "float": [("abc", "'abc'"), (False, "false")],
               "bool": [(1, "1"), ("yes please", "'yes please'")], "str": [(5, "5")], "list": [(5, "5")],
               "dict": [(5, "5")], "any": [("nope", "'nope'")]}
    if spec.kind == "list" and spec.item is not None:  # an element of the other kind
        by_kind["list"].append(([1], "[1]") if spec.item.kind == "str" else (["a"], "[a]"))
    return by_kind[spec.kind] + [(v, s) for v, s in ((eval(t), s) for t, s in _out_of_range(spec))]


def _wrap(reg, node):
    """A config holding ``node`` at the first place a component of registry ``reg`` goes, and its path."""
    if reg == "transforms":
        return {"data_loader": {"train": {"map": {"operations": [node]}}}}, "data_loader.train.map.operations[0]"
    path = next(p for p, r in sc.COMPONENTS.items() if r == reg)
    cfg = node
    for part in reversed(path.split(".")):
        cfg = {part: cfg}
    return cfg, path


def _component_cases():
    for reg in ("models", "datasets", "transforms", "losses", "optimizers", "lr_schedules"):
        registry = sc._registry(reg)
        for name in registry:
            builder = registry.get(name)
            if not builder.__module__.startswith("src."):
                continue
            for arg, spec in sc.builder_specs(reg, name, builder).items():
                if spec is None or arg in RUNTIME_ARGS.get(reg, ()):
                    continue
                for value, shown in _bad_component_values(spec):
                    yield pytest.param(reg, name, arg, value, shown, id=f"{reg}-{name}-{arg}-{shown}")


@pytest.mark.parametrize("reg,name,arg,value,shown", list(_component_cases()))
def test_every_component_argument_refuses_a_wrong_type_and_an_out_of_range_value(reg, name, arg, value, shown):
    cfg, path = _wrap(reg, {"type": name, arg: value})
    with pytest.raises(ConfigError) as e:
        sc.check_config(cfg, {path.split(".")[0]: "my.yaml"})
    msg = str(e.value)
    assert msg.startswith(f"{path}.{arg}: expected "), msg
    assert msg.endswith(f", got {shown} (from my.yaml)") or f", got {shown} (from my.yaml);" in msg, msg


def test_component_arguments_through_load_config():
    with pytest.raises(ConfigError) as e:
        load_config(XS, ["learning_rate.base_lr=abc"])
    assert str(e.value) == ("learning_rate.base_lr: expected float >= 0, got 'abc' "
                            "(from override 'learning_rate.base_lr=abc')")
    ops = "data_loader.train.map.operations=[{type: RandomCrop, size: 1.5}]"
    with pytest.raises(ConfigError) as e:
        load_config(XS, [ops])
    assert str(e.value) == f"data_loader.train.map.operations[0].size: expected int >= 1, got 1.5 (from override '{ops}')"
    with pytest.raises(ConfigError) as e:
        load_config(XS, ["model.dropout_rate=1"])
    assert str(e.value) == "model.dropout_rate: expected float in [0, 1), got 1 (from override 'model.dropout_rate=1')"
    # null where the model record fills it; an unquoted squeezenet version (YAML reads it as a number)
    cfg = load_config(XS, ["data_loader.train.map.operations=[{type: RandomCrop, size: null}]"])
    assert cfg.data_loader.train.map.operations[0]["size"] == 160  # X3D-XS train crop
    cfg = load_config(os.path.join(CONFIG_DIR, "e3d_squeezenet.yaml"), ["model.version=1.1"])
    assert cfg.model.version == 1.1


def test_unknown_component_keys_are_refused_when_the_config_is_read(tmp_path):
    """A misspelt key inside a component fails at load time (before any data is read), naming the
    key, the closest accepted one and where it was set."""
    with pytest.raises(ConfigError) as e:
        load_config(XS, ["data_loader.train.dataset.rooot=/data"])
    msg = str(e.value)
    assert msg.startswith("unknown key 'data_loader.train.dataset.rooot' for type 'Kinetics400'; did you mean 'root'?"), msg
    assert msg.endswith("(from override 'data_loader.train.dataset.rooot=/data')"), msg
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"_base_: {XS}\nmodel:\n  widht_factor: 2.0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(str(bad))
    assert "unknown key 'model.widht_factor' for type 'x3d_xs'; did you mean 'width_factor'?" in str(e.value)
    assert str(e.value).endswith(f"(from {bad})"), str(e.value)


def test_data_set_class_list_options_are_typed_and_runtime_arguments_refused():
    """unknown_labels is error|skip and allow_outside_root a bool in every data set taking them;
    class_names comes from the train split, never from a config."""
    with pytest.raises(ConfigError) as e:
        load_config(XS, ["data_loader.eval.dataset.unknown_labels=ignore"])
    assert str(e.value) == ("data_loader.eval.dataset.unknown_labels: expected one of 'error', 'skip', got 'ignore' "
                            "(from override 'data_loader.eval.dataset.unknown_labels=ignore')")
    with pytest.raises(ConfigError) as e:
        load_config(XS, ["data_loader.train.dataset.allow_outside_root=maybe"])
    assert str(e.value) == ("data_loader.train.dataset.allow_outside_root: expected bool (true or false), got 'maybe' "
                            "(from override 'data_loader.train.dataset.allow_outside_root=maybe')")
    with pytest.raises(ConfigError) as e:
        load_config(XS, ["data_loader.eval.dataset.class_names=[a, b]"])
    assert str(e.value) == ("data_loader.eval.dataset.class_names: not a config key, the pipeline sets it (the eval "
                            "split gets the train split's class list; give a label_map to fix it) "
                            "(from override 'data_loader.eval.dataset.class_names=[a, b]')")
    cfg = load_config(XS, ["data_loader.eval.dataset.unknown_labels=skip",
                           "data_loader.train.dataset.allow_outside_root=true"])
    assert cfg.data_loader.eval.dataset.unknown_labels == "skip"
    assert cfg.data_loader.train.dataset.allow_outside_root is True
