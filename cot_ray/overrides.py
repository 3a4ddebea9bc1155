"""``--set section.field=value``: change one config field on the command line, without a file.

Each value is read as a YAML scalar or list (``--set sft.lr=3e-4``, ``--set corpus.tasks=[mult]``,
``--set rl.difficulty=null``); the overrides are laid over the config file like a file that
``extends`` it, and validated with it, so an error names the field.
"""

from __future__ import annotations

from typing import Any

import yaml


class OverrideError(ValueError):
    """A ``--set`` argument that is not of the form ``section.field=value``."""


def parse_sets(sets: list[str]) -> dict[str, Any]:
    """The nested mapping of ``sets`` (later ones win): ``["sft.lr=1e-4"]`` -> ``{"sft": {"lr": 1e-4}}``."""
    tree: dict[str, Any] = {}
    for item in sets:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise OverrideError(f"--set {item!r}: expected section.field=value, e.g. sft.lr=3e-4")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise OverrideError(f"--set {key}: {text!r} is not a YAML value") from None
        if isinstance(value, dict):
            raise OverrideError(f"--set {key}: set one field at a time (section.field=value), not a mapping")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise OverrideError(f"--set {item!r}: an earlier --set gives {part} a value, not fields")
        node[parts[-1]] = value
    return tree
