"""Label maps: the class names in index order, as JSON, shared by training, checkpoints and inference.

Format (written by :func:`save_label_map`)::

    {"num_classes": 3, "classes": ["abseiling", "air drumming", "archery"]}

:func:`load_label_map` also accepts a plain JSON list of names or a ``{"name": index}`` mapping.
"""
from __future__ import annotations

import json
import os
from typing import List, Sequence

from ..outputs import atomic_write
from .errors import DataError


def save_label_map(class_names: Sequence[str], path: str) -> str:
    """Write ``class_names`` (index order) to ``path`` atomically; returns the path."""
    names = [str(c) for c in class_names]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: duplicate class names in label map")
    text = json.dumps({"num_classes": len(names), "classes": names}, indent=1, ensure_ascii=False) + "\n"
    return atomic_write(path, text)  # a full disk: one-line NoSpaceError, no partial file left


def load_label_map(path: str) -> List[str]:
    """Class names in index order from a label-map JSON file."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: label map not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON in label map ({e.msg}, line {e.lineno})") from None
    if isinstance(data, dict) and "classes" in data:
        data = data["classes"]
    if isinstance(data, dict):
        try:
            pairs = sorted((int(i), str(n)) for n, i in data.items())
        except (TypeError, ValueError):
            raise DataError(f"{path}: expected {{'name': index}} with integer indices") from None
        if [i for i, _ in pairs] != list(range(len(pairs))):
            raise DataError(f"{path}: label indices must be 0..{len(pairs) - 1} without gaps")
        data = [n for _, n in pairs]
    if not isinstance(data, list) or not all(isinstance(n, str) for n in data):
        raise DataError(f"{path}: expected {{'classes': [names...]}} or a list of class names")
    if len(set(data)) != len(data):
        raise DataError(f"{path}: duplicate class names in label map")
    return list(data)
