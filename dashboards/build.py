"""Dashboards code -> the JSON committed in dashboards/json/ (what Grafana's file
provisioning and `dashboards publish` load)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from .boards import DASHBOARDS

JSON_DIR = Path(__file__).parent / "json"
PROVISIONING_DIR = Path(__file__).parent / "provisioning"


def dashboards() -> list[dict[str, Any]]:
    """Every dashboard's JSON model, panel ids numbered in order (Grafana keys a
    panel's state and links by id)."""
    models = []
    for make in DASHBOARDS:
        model = json.loads(json.dumps(make().build(), cls=JSONEncoder))
        for number, panel in enumerate(model.get("panels", []), start=1):
            panel["id"] = number
        models.append(model)
    return models


def file_name(model: dict[str, Any]) -> str:
    return f"{model['uid']}.json"


def render() -> dict[str, str]:
    """File name -> text, stable (sorted keys, fixed indent, final newline) so that
    the committed files diff cleanly."""
    return {file_name(m): json.dumps(m, indent=2, sort_keys=True, ensure_ascii=False) + "\n" for m in dashboards()}


def write(folder: Path = JSON_DIR) -> list[Path]:
    """Write every dashboard's JSON into `folder` and remove ones no longer built."""
    folder.mkdir(parents=True, exist_ok=True)
    files = render()
    for old in folder.glob("*.json"):
        if old.name not in files:
            old.unlink()
    written = []
    for name, text in files.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(folder: Path = JSON_DIR) -> list[str]:
    """What differs between the code and the committed JSON (empty when up to date)."""
    files = render()
    problems = []
    for name, text in files.items():
        path = folder / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from what the code builds")
    problems += [f"{p}: no longer built" for p in sorted(folder.glob("*.json")) if p.name not in files]
    return problems


def load(folder: Path = JSON_DIR) -> list[dict[str, Any]]:
    """The committed dashboards, as Grafana would read them."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
