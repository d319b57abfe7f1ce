"""Units a device may report in, and the factor to the schema's unit for each dimension.

The schema's units: W, kWh, VA, A, V, %, s, bytes/bits as counted, degrees C.
"""

from __future__ import annotations

# unit -> (dimension, factor to the schema's unit)
UNITS: dict[str, tuple[str, float]] = {
    "mW": ("power", 0.001),
    "W": ("power", 1.0),
    "kW": ("power", 1000.0),
    "Wh": ("energy", 0.001),
    "kWh": ("energy", 1.0),
    "MWh": ("energy", 1000.0),
    "VA": ("apparent_power", 1.0),
    "kVA": ("apparent_power", 1000.0),
    "mA": ("current", 0.001),
    "A": ("current", 1.0),
    "mV": ("voltage", 0.001),
    "V": ("voltage", 1.0),
    "%": ("percent", 1.0),
    "ratio": ("ratio", 1.0),
    "ms": ("time", 0.001),
    "cs": ("time", 0.01),  # centiseconds: SNMP TimeTicks
    "s": ("time", 1.0),
    "min": ("time", 60.0),
    "C": ("temperature", 1.0),
    "count": ("count", 1.0),
    "state": ("state", 1.0),
    "bps": ("rate", 1.0),
    "Mbps": ("rate", 1e6),
}
