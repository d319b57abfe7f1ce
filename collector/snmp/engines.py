"""Choosing an SNMP engine by name (config `collector.snmp_engine`)."""

from __future__ import annotations

from .engine import SnmpEngine

# Engine names in order of preference for `auto`.
ENGINE_NAMES = ("gufo", "pysnmp")


def available_engines() -> list[str]:
    """Engines whose library is installed here."""
    return [name for name in ENGINE_NAMES if _importable(name)]


def _importable(name: str) -> bool:
    if name == "pysnmp":
        return True
    if name == "gufo":
        try:
            import gufo.snmp  # noqa: F401
        except ImportError:
            return False
        return True
    return False


def make_engine(name: str = "auto") -> SnmpEngine:
    if name == "auto":
        name = available_engines()[0]
    if name == "gufo" and _importable("gufo"):
        from .gufo_engine import GufoEngine

        return GufoEngine()
    if name == "pysnmp":
        from .pysnmp_engine import PysnmpEngine

        return PysnmpEngine()
    raise ValueError(f"unknown or unavailable SNMP engine {name!r}: available: {available_engines()}")
