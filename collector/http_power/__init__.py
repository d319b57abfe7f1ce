"""Smart plugs and meters over HTTP: Shelly Gen2+, Tasmota, and any JSON API by a path map.

One `HttpPowerSource` per device, split by job: `client` (the HTTP session and each
type's authentication), `parsers` (each type's reply -> rows; pure functions) and
`source` (the poll). What is read (docs/sources.md has the full reference):

* shelly: `GET /rpc/Switch.GetStatus?id=N` per configured channel (default 0):
  `apower` W, `aenergy.total` Wh (-> kWh), `voltage` V, `current` A, `pf`.
  Digest auth (SHA-256, user `admin`) when a password is configured.
* tasmota: `GET /cm?cmnd=Status 8`: `StatusSNS.ENERGY.Power` W, `Total` kWh,
  `Voltage`, `Current`, `ApparentPower` VA, `Factor`; `user`/`password` query
  parameters when a password is configured. Multi-channel devices report arrays.
* json: `GET url`; each configured field read at its path and converted from its unit.

One channel gives one row, scope `device`, entity `total`. Several channels give one
row per channel (scope `outlet`, entity = the channel's id as the device numbers it)
plus the device row summing them.
"""

from .parsers import at_path
from .source import HttpPowerSource

__all__ = ["HttpPowerSource", "at_path"]
