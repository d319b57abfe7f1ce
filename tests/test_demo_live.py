"""The demo's live devices (simulate/live) without processes: the SNMP data files carry
the simulator's readings at the OIDs the profiles read (APC and Raritan PDUs, APC UPS),
in the profiles' raw units; a minute reads the same in any process."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.profiles import load_profiles
from greenwatch.config import load_config
from simulate.live.layout import LAYOUT, Layout, write_live_estate
from simulate.live.readings import STEP_S, LiveEstate
from simulate.live.snmp import snmprec

NOON = 1_764_590_400  # 2025-12-01 12:00 UTC, a Monday


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory) -> LiveEstate:
    folder = tmp_path_factory.mktemp("live")
    return LiveEstate(load_config(write_live_estate(folder, "http://127.0.0.1:1")))


def values(text: str) -> dict[str, int]:
    return {oid: int(value) for oid, kind, value in (line.split("|", 2) for line in text.splitlines())
            if kind in ("2", "65", "66", "70")}


def reading(estate: LiveEstate, device: str, scope: str, entity: str, field: str) -> float:
    found = [r.fields[field] for r in estate.readings("dc-london", device, NOON)
             if r.tags.get("scope") == scope and r.tags.get("entity") == entity and field in r.fields]
    assert len(found) == 1, (device, scope, entity, found)
    return found[0]


def test_apc_pdu_file_holds_the_outlets_and_total_in_the_profiles_units(estate: LiveEstate) -> None:
    oids = values(snmprec(load_profiles(), ["apc-rpdu2"], estate.readings("dc-london", "pdu-a1", NOON)))
    total = reading(estate, "pdu-a1", "device", "total", "watts")
    assert oids["1.3.6.1.4.1.318.1.1.26.4.3.1.5.1"] == round(total / 10)  # hundredths of kW
    assert oids["1.3.6.1.4.1.318.1.1.26.4.3.1.9.1"] == round(reading(estate, "pdu-a1", "device", "total",
                                                                       "energy_kwh") * 10)  # tenths of kWh
    for outlet in range(1, 8):
        watts = reading(estate, "pdu-a1", "outlet", str(outlet), "watts")
        assert oids[f"1.3.6.1.4.1.318.1.1.26.9.4.3.1.7.{outlet}"] == round(watts)
    assert total > 1000


def test_raritan_pdu_file_maps_inlet_and_outlet_sensors_by_type(estate: LiveEstate) -> None:
    oids = values(snmprec(load_profiles(), ["raritan-pdu2"], estate.readings("dc-london", "pdu-a2", NOON)))
    inlet = "1.3.6.1.4.1.13742.6.5.2.3.1.4.1.1"
    assert oids[f"{inlet}.5"] == round(reading(estate, "pdu-a2", "inlet", "1", "watts"))  # activePower, W
    assert oids[f"{inlet}.8"] == round(reading(estate, "pdu-a2", "inlet", "1", "energy_kwh") * 1000)  # Wh
    outlet = "1.3.6.1.4.1.13742.6.5.4.3.1.4.1"
    assert oids[f"{outlet}.2.5"] == round(reading(estate, "pdu-a2", "outlet", "2", "watts"))
    # Other sensor types (voltage: 4) are left as recorded.
    recorded = values((Path(__file__).parent / "recordings" / "raritan-pdu2.snmprec").read_text())
    assert oids[f"{inlet}.4"] == recorded[f"{inlet}.4"]


def test_ups_file_and_a_minute_that_reads_the_same_in_another_process(estate: LiveEstate, tmp_path: Path) -> None:
    oids = values(snmprec(load_profiles(), ["apc-ups"], estate.readings("dc-london", "ups-2", NOON)))
    assert oids["1.3.6.1.4.1.318.1.1.1.4.2.8.0"] == round(reading(estate, "ups-2", "output", "total", "watts"))
    assert oids["1.3.6.1.4.1.318.1.1.1.4.3.3.0"] == round(
        reading(estate, "ups-2", "device", "total", "load_percent") * 10)
    # A fresh estate (as the demo's test builds beside the live process) reads the same minute alike,
    # and the next minute differently.
    other = LiveEstate(load_config(write_live_estate(tmp_path, "http://127.0.0.1:1")))
    assert other.watts("dc-london", "srv-a1-01", NOON + 30) == estate.watts("dc-london", "srv-a1-01", NOON)
    assert other.watts("dc-london", "srv-a1-01", NOON + STEP_S) != estate.watts("dc-london", "srv-a1-01", NOON)
    layout = Layout.load(tmp_path / LAYOUT)
    assert sum(len(a.devices) for a in layout.agents) == 30 and all(len(a.devices) <= 25 for a in layout.agents)


def test_bad_demo_options_exit_2_naming_each_and_start_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from greenwatch.cli import main

    with socket.socket() as held:  # another program's InfluxDB
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        code = main(["demo", "--dir", str(tmp_path / "d"), "--days", "0", "--step", "900", "--influx-port", str(port)])
    err = capsys.readouterr().err
    assert code == 2
    assert "--days: expected more than 0 and at most 60, got 0" in err
    assert "--step: expected 10 to 300 seconds" in err
    assert f"--influx-port: tcp port {port} on 127.0.0.1 is in use by another program" in err
    assert not (tmp_path / "d").exists()  # nothing written, nothing started
