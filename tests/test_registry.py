"""Registry: registration, errors, and build_from_cfg's contract."""
import copy

import pytest

from src.registry import Registry, RegistryError, build_from_cfg


def make_registry():
    reg = Registry("widgets")

    @reg.register()
    def knob(size: int, colour: str = "red"):
        return ("knob", size, colour)

    class Lever:
        def __init__(self, length: float):
            self.length = length

    reg.register("lever", Lever)
    return reg


def test_register_by_decorator_and_call():
    reg = make_registry()
    assert "knob" in reg and "lever" in reg and len(reg) == 2
    assert list(reg) == ["knob", "lever"]
    assert build_from_cfg({"type": "lever", "length": 2.5}, reg).length == 2.5


def test_duplicate_name_raises():
    reg = make_registry()
    with pytest.raises(RegistryError, match="registry 'widgets': 'knob' is already registered"):
        reg.register("knob", lambda: None)


def test_unknown_name_lists_known_and_closest():
    reg = make_registry()
    with pytest.raises(RegistryError) as e:
        reg.get("knbo")
    msg = str(e.value)
    assert msg == "registry 'widgets' has no 'knbo'; did you mean 'knob'? (known: knob, lever)"
    assert "\n" not in msg


def test_build_never_mutates_the_callers_config_and_adds_runtime_args():
    reg = make_registry()
    cfg = {"type": "knob", "size": 3}
    before = copy.deepcopy(cfg)
    assert build_from_cfg(cfg, reg, colour="blue") == ("knob", 3, "blue")
    assert cfg == before


def test_build_rejects_unknown_keys_with_dotted_path():
    reg = make_registry()
    with pytest.raises(RegistryError) as e:
        build_from_cfg({"type": "knob", "size": 1, "sise": 2}, reg, where="model")
    assert "unknown key 'model.sise' for type 'knob'" in str(e.value)
    assert "accepted: colour, size" in str(e.value)


def test_build_requires_type():
    with pytest.raises(RegistryError, match="model: missing key 'type'"):
        build_from_cfg({"size": 1}, make_registry(), where="model")


def test_builtin_registries_are_populated_from_explicit_lists():
    import src.models  # noqa: F401  (registers the X3D variants)
    from src.registry import MODELS
    assert {"x3d_xs", "x3d_s", "x3d_m", "x3d_l"} <= set(MODELS)
