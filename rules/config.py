"""The rules' part of the config file."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationInfo, field_validator

from greenwatch.core.config import Duration, Strict, base_dir


class RulesConfig(Strict):
    # Folders of the user's own rules (YAML, each with its test file), beside the
    # shipped pack in rules/pack/. A user's rule with a shipped rule's id replaces it.
    dirs: list[Path] = []
    # Leave the shipped pack out (only the rules in dirs run).
    shipped: bool = True
    # How often the service evaluates every rule.
    interval: Duration = 900.0

    @field_validator("dirs")
    @classmethod
    def _relative_dirs(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        return [p if p.is_absolute() else base_dir(info) / p for p in value]
