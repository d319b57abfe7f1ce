"""The metric schema's helpers."""

from greenwatch.core.schema import Sample, device_watts


def power(scope: str, entity: str, watts: float) -> Sample:
    return Sample("power", {"scope": scope, "entity": entity}, {"watts": watts}, 1)


def test_device_watts_prefers_the_devices_own_total_and_never_sums_scopes():
    outlets = [power("outlet", str(i), 100.0) for i in range(4)]
    assert device_watts([power("device", "total", 450.0), *outlets]) == 450.0
    assert device_watts([power("inlet", "1", 200.0), power("inlet", "2", 250.0), *outlets]) == 450.0
    assert device_watts([power("psu", "1", 180.0), power("psu", "2", 170.0)]) == 350.0
    # A UPS's output (or a switch's PoE) is power handed on, not the device's draw.
    assert device_watts([power("output", "1", 800.0)]) is None
    assert device_watts([Sample("host", {"scope": "device"}, {"uptime_s": 5.0}, 1)]) is None
