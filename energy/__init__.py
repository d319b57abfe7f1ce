"""Energy accounting: hourly kWh, cost and carbon per device and per site, from the
collector's `power` points, written back to InfluxDB (see docs/energy.md)."""
