"""``eval.py``'s own config section, and what it takes from ``infer`` (the section that drove it before).

The rule: every key of ``eval`` (views, batch size, BatchNorm folding, the video-level protocol)
defaults to ``null``, which means "the same as ``infer.<key>``" (whose own ``null`` short side and
crop mean the model record's). A config that sets these keys only under ``infer`` therefore
still evaluates as it did; when such a value came from a config file or an override (not from
``defaults.yaml``), ``eval.py`` prints one deprecation note naming the keys. An ``infer.<key>=...``
override given to ``eval.py`` while the config sets ``eval.<key>`` is not used, and ``eval.py``
says so. :func:`fill_eval_section` runs while the config is loaded (before the geometry), so the
resolved config, and the ``config.yaml`` saved beside checkpoints, holds every ``eval`` value.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping

EVAL_KEYS = ("num_clips", "num_crops", "short_side", "crop_size", "batch_size", "video_level", "fold_bn")


def fill_eval_section(cfg: Dict[str, Any], origin: Mapping[str, str]) -> List[str]:
    """Set each null ``eval.<key>`` of the plain-dict ``cfg`` to ``infer.<key>``, in place.
    ``origin`` maps dotted paths to the file or override that set them (absent: defaults.yaml).
    Returns the one-line notes ``eval.py`` prints (none when nothing was taken or ignored)."""
    ev, inf = cfg.get("eval"), cfg.get("infer")
    if not isinstance(ev, dict) or not isinstance(inf, dict):
        return []
    taken: List[str] = []
    ignored: List[str] = []
    for key in EVAL_KEYS:
        user_set = f"infer.{key}" in origin
        if ev.get(key) is None:
            if key in inf:
                ev[key] = inf[key]
                if user_set and inf[key] is not None:
                    taken.append(key)
        elif user_set and origin[f"infer.{key}"].startswith("override") and inf.get(key) != ev[key]:
            ignored.append(f"{origin[f'infer.{key}']} (eval.{key} is {ev[key]!r})")
    notes = []
    if taken:
        notes.append("eval.py read " + ", ".join(f"infer.{k}" for k in taken) + " (deprecated: set "
                     + ", ".join(f"eval.{k}" for k in taken) + "; eval.py has its own eval: section)")
    if ignored:
        notes.append("not used by eval.py: " + "; ".join(ignored) + "; set eval.* for eval.py")
    return notes


__all__ = ["EVAL_KEYS", "fill_eval_section"]
