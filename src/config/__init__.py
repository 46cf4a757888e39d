"""YAML configs: safe loading, schema check against ``defaults.yaml``, dotted overrides, dumping.

``defaults.yaml`` lists every key a config may set. A variant file (``x3d_xs.yaml`` ...) is merged
over it; a key the defaults do not have is rejected with its dotted path. A mapping with a
``type`` key is a *component* (built through a registry): its other keys are the builder's
keyword arguments, checked when it is built, and a component whose ``type`` changes replaces the
default one wholesale. The result is an ``ml_collections.ConfigDict``, which raises on a
missing key instead of returning None.
"""
from __future__ import annotations

import argparse
import difflib
import os
from typing import Any, Dict, Iterable, List, Optional

import yaml
from ml_collections import ConfigDict

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULTS = os.path.join(CONFIG_DIR, "defaults.yaml")


class ConfigError(ValueError):
    """A config file or override that does not fit the schema (one-line message)."""


def read_yaml(path: str) -> Dict[str, Any]:
    """``yaml.safe_load`` a mapping; errors name the file."""
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            raise ConfigError(f"{path}{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _is_component(node: Any) -> bool:
    return isinstance(node, dict) and "type" in node


def _merge(base: Dict[str, Any], new: Dict[str, Any], prefix: str, source: str) -> Dict[str, Any]:
    out = dict(base)
    for key, value in new.items():
        path = f"{prefix}{key}"
        if key not in base:
            if _is_component(base):
                out[key] = value  # builder kwargs: checked when the component is built
                continue
            close = difflib.get_close_matches(str(key), [str(k) for k in base], n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"{source}: unknown key '{path}'{hint}")
        old = base[key]
        if isinstance(old, dict) and isinstance(value, dict):
            if _is_component(value) and value["type"] != old.get("type"):
                out[key] = value
            else:
                out[key] = _merge(old, value, path + ".", source)
        elif isinstance(old, dict) and value is not None and not _is_component(old):
            raise ConfigError(f"{source}: '{path}' must be a mapping, got {type(value).__name__}")
        else:
            out[key] = value
    return out


def parse_override(text: str) -> tuple:
    """``'train.epochs=5'`` -> ``('train.epochs', 5)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected KEY=VALUE with a dotted KEY, e.g. train.epochs=5")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}': empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _nest(dotted: str, value: Any) -> Dict[str, Any]:
    node: Any = value
    for part in reversed(dotted.split(".")):
        node = {part: node}
    return node


def load_config(path: str, overrides: Iterable[str] = ()) -> ConfigDict:
    """Defaults <- ``path`` <- dotted overrides, checked against the schema."""
    cfg = _merge(read_yaml(DEFAULTS), read_yaml(path), "", path)
    for text in overrides:
        key, value = parse_override(text)
        cfg = _merge(cfg, _nest(key, value), "", f"override '{text}'")
    return ConfigDict(cfg)


def to_dict(cfg: Any) -> Any:
    """ConfigDict (or nested mappings) -> plain dicts and lists."""
    if hasattr(cfg, "to_dict"):
        cfg = cfg.to_dict()
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def dump_config(cfg: Any, path: Optional[str] = None) -> str:
    """The resolved config as YAML text; written atomically to ``path`` when given."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    return text


def add_config_args(parser: argparse.ArgumentParser, default: Optional[str] = None) -> None:
    """``--config`` plus overrides as ``--set k=v [k=v ...]`` or bare trailing ``k=v`` words."""
    parser.add_argument("--config", default=default, required=default is None,
                        help="YAML config (e.g. src/config/x3d_xs.yaml)")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                        metavar="KEY=VALUE", help="dotted overrides, e.g. --set train.epochs=5")
    parser.add_argument("extra_overrides", nargs="*", metavar="KEY=VALUE",
                        help="more dotted overrides (same as --set)")


def config_from_args(args: argparse.Namespace) -> ConfigDict:
    return load_config(args.config, list(args.overrides) + list(getattr(args, "extra_overrides", [])))


__all__: List[str] = ["ConfigError", "load_config", "dump_config", "parse_override", "read_yaml",
                      "add_config_args", "config_from_args", "to_dict", "DEFAULTS", "CONFIG_DIR"]
