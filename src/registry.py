"""Name -> builder registries, and ``build_from_cfg`` that turns a config mapping into an object.

Every configurable component (models and layers, datasets, transforms, losses, optimizers,
LR schedules) is registered under a name, so YAML configs can say ``type: x3d_xs``.
"""
from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Mapping
from typing import Any, Callable, Dict, Generic, Iterator, Optional, TypeVar

from .errors import UserError

T = TypeVar("T", bound=Callable[..., Any])


class RegistryError(UserError, KeyError):
    """Unknown/duplicate name or unknown builder key; prints its one-line message unquoted."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """A named table of builders (classes or functions).

    Register with ``@REG.register()`` / ``@REG.register("name")`` or ``REG.register("name", obj)``.
    Duplicate names raise; unknown names raise one line naming the registry, the name, the known
    names and the closest match.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._table: Dict[str, T] = {}

    def register(self, name: Optional[str] = None, obj: Optional[T] = None) -> Any:
        if obj is not None:
            self._add(name or obj.__name__, obj)
            return obj

        def deco(fn: T) -> T:
            self._add(name or fn.__name__, fn)
            return fn

        return deco

    def _add(self, name: str, obj: T) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"registry '{self.name}': name must be a non-empty string, got {name!r}")
        if name in self._table:
            raise RegistryError(f"registry '{self.name}': '{name}' is already registered "
                           f"(by {self._table[name]!r})")
        self._table[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._table[name]
        except KeyError:
            known = sorted(self._table)
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise RegistryError(f"registry '{self.name}' has no '{name}'{hint} "
                           f"(known: {', '.join(known) or 'none'})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._table))

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {sorted(self._table)})"


def _plain(value: Any) -> Any:
    """Deep-copy a config value into plain dicts/lists (ConfigDict and friends included)."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return copy.deepcopy(value)


def build_from_cfg(cfg: Mapping, registry: Registry, where: str = "", **runtime_args: Any) -> Any:
    """Build ``registry.get(cfg['type'])(**rest_of_cfg, **runtime_args)``.

    ``cfg`` is never mutated. ``where`` is the dotted config path used in error messages.
    Keyword arguments the builder does not accept are rejected by name, before calling it.
    """
    label = where or registry.name
    if not isinstance(cfg, Mapping) and not hasattr(cfg, "to_dict"):
        raise TypeError(f"{label}: expected a mapping with a 'type' key, got {type(cfg).__name__}")
    args = _plain(cfg)
    if "type" not in args:
        raise RegistryError(f"{label}: missing key 'type' (one of: {', '.join(registry)})")
    name = args.pop("type")
    builder = registry.get(name)
    args.update(runtime_args)
    check_kwargs(builder, args, label, name)
    return builder(**args)


def check_kwargs(builder: Callable, args: Mapping[str, Any], label: str, name: str) -> None:
    """Refuse keys ``builder`` does not accept (one line naming them, a close match and the accepted
    ones); builders taking ``**kwargs`` accept anything."""
    try:
        sig = inspect.signature(builder)
    except (TypeError, ValueError):
        return
    params = sig.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    accepted = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(args) - accepted)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(accepted), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        keys = ", ".join(f"'{label}.{u}'" for u in unknown)
        raise RegistryError(f"unknown key {keys} for type '{name}'{hint} "
                            f"(accepted: {', '.join(sorted(accepted))})")


MODELS: Registry = Registry("models")
DATASETS: Registry = Registry("datasets")
TRANSFORMS: Registry = Registry("transforms")
LOSSES: Registry = Registry("losses")
OPTIMIZERS: Registry = Registry("optimizers")
LR_SCHEDULES: Registry = Registry("lr_schedules")
BATCH_TRANSFORMS: Registry = Registry("batch_transforms")  # whole-batch ops of the train pipeline (MixUp/CutMix)
