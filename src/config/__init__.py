"""YAML configs: safe loading, schema check against ``defaults.yaml``, inheritance, dotted overrides.

``defaults.yaml`` lists every key a config may set. A config file is merged over it; a key the
defaults do not have is rejected with its dotted path. ``_base_: other.yaml`` (relative to the
file) makes a file a variant of another: the base chain is merged first, so a variant file holds
only what differs. After the overrides, :func:`src.config.geometry.resolve_geometry` fills the
clip geometry (frames, sampling rate, crops, normalisation) from the model's default record and
rejects values that contradict it, so the resolved config (saved beside checkpoints) is complete. A mapping with a
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

from .errors import ConfigError
from .geometry import to_dict

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULTS = os.path.join(CONFIG_DIR, "defaults.yaml")


def read_yaml(path: str) -> Dict[str, Any]:
    """``yaml.safe_load`` a mapping; errors name the file."""
    if os.path.isdir(path):
        raise ConfigError(f"{path}: is a directory, not a config file")
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror or type(e).__name__})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                          f"save the config as UTF-8") from None
    try:
        data = yaml.safe_load(text)
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
        elif isinstance(old, list) and isinstance(value, dict):
            raise ConfigError(f"{source}: '{path}' is a list: give the whole list ({path}=[...]) "
                              f"or set it in a config file")
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


BASE_KEY = "_base_"


def _chain(path: str, seen: Optional[List[str]] = None) -> List[tuple]:
    """``[(file, data), ...]`` from the root-most ``_base_`` to ``path``."""
    seen = list(seen or [])
    real = os.path.realpath(path)
    if real in seen:
        raise ConfigError(f"{path}: '_base_' chain loops back to itself")
    data = read_yaml(path)
    base = data.pop(BASE_KEY, None)
    if base is None:
        return [(path, data)]
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: '_base_' must be a file name, got {base!r}")
    base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(os.path.abspath(path)), base)
    if not os.path.isfile(base_path):
        raise ConfigError(f"{path}: '_base_' file {base} not found (looked for {base_path})")
    return _chain(base_path, seen + [real]) + [(path, data)]


def load_config(path: str, overrides: Iterable[str] = (), *, resolve: bool = True,
                eval_notes: Optional[List[str]] = None) -> ConfigDict:
    """Defaults <- ``_base_`` chain <- ``path`` <- dotted overrides, checked against the schema
    (keys, then types and ranges: ``schema.py``; components only with ``resolve``); null
    ``eval.*`` keys take ``infer.*`` (``sections.py``; the notes ``eval.py`` prints about it are
    appended to ``eval_notes``); then the clip geometry is resolved against the model
    (``resolve=False`` skips that)."""
    from .schema import check_config, record_origin
    from .sections import fill_eval_section
    cfg = read_yaml(DEFAULTS)
    origin: Dict[str, str] = {}  # dotted path -> the file or override that set it (for messages)
    for file, data in _chain(path):
        cfg = _merge(cfg, data, "", file)
        record_origin(origin, data, file)
    for text in overrides:
        key, value = parse_override(text)
        cfg = _merge(cfg, _nest(key, value), "", f"override '{text}'")
        record_origin(origin, _nest(key, value), f"override '{text}'")
    check_config(cfg, origin, components=resolve)  # types and ranges (src/config/schema.py)
    notes = fill_eval_section(cfg, origin)  # eval.* null: infer.* (src/config/sections.py)
    if eval_notes is not None:
        eval_notes.extend(notes)
    if resolve:
        from .geometry import resolve_geometry
        cfg = resolve_geometry(cfg)
    return ConfigDict(cfg)


def dump_config(cfg: Any, path: Optional[str] = None) -> str:
    """The resolved config as YAML text; written atomically to ``path`` when given (a full disk:
    one-line :class:`~src.outputs.NoSpaceError`, no partial file left)."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)
    if path:
        from ..outputs import atomic_write
        atomic_write(path, text)
    return text


def config_from_args(args: argparse.Namespace, **kwargs: Any) -> ConfigDict:
    """The config of ``--config`` with the command line's ``KEY=VALUE`` overrides (src.cli);
    ``kwargs`` go to :func:`load_config`."""
    return load_config(args.config, list(getattr(args, "overrides", [])), **kwargs)


from ..cli import add_config_args  # noqa: E402  (re-exported: the one --config/override convention)

__all__: List[str] = ["ConfigError", "load_config", "dump_config", "parse_override", "read_yaml",
                      "add_config_args", "config_from_args", "to_dict", "DEFAULTS", "CONFIG_DIR"]
