"""The rules' part of the config file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from greenwatch.core.calendar import Window
from greenwatch.core.config import Duration, Strict, base_dir

from .model import LongDuration


class RuleOverride(Strict):
    """Change one rule's parameters, for every site or for the sites named."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    rule: str
    sites: list[str] = []
    enabled: bool = True
    threshold: float | None = Field(None, allow_inf_nan=False)
    for_: LongDuration | None = Field(None, alias="for")
    window: Window | None = None
    severity: Literal["info", "warning", "critical"] | None = None


class RulesConfig(Strict):
    # Folders of the user's own rules (YAML, each with its test file), beside the
    # shipped pack in rules/pack/. A user's rule with a shipped rule's id replaces it.
    dirs: list[Path] = []
    # Leave the shipped pack out (only the rules in dirs run).
    shipped: bool = True
    # How often the service evaluates every rule.
    interval: Duration = 900.0
    # Per-rule parameter changes; a later entry wins over an earlier one, and one naming
    # the site over one for every site.
    overrides: list[RuleOverride] = []

    @field_validator("dirs")
    @classmethod
    def _relative_dirs(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        return [p if p.is_absolute() else base_dir(info) / p for p in value]
