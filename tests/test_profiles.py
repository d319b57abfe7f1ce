"""Shipped SNMP profiles: each loads, sysObjectID picks the most specific one, and each
reads its recording (served by a real snmpsim agent, through every SNMP engine) into
the values the MIB says, with the schema's tags. Expected values are computed here from
the recordings' raw numbers, so a wrong scale, unit or column shows as a wrong number.
Bad profile files are refused with the file, the line and the field named."""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path

import pytest
import snmpsim as snmpsim_package
from collectorhelp import RECORDINGS, snmprec
from snmphelp import make_source

from collector.profiles import SHIPPED_DIR, load_profiles
from greenwatch.core.schema import FIELDS
from greenwatch.core.yamlfile import InputError

# Real walks of real devices that snmpsim ships (a Linux host with net-snmp, Windows XP).
SHIPPED_WALKS = Path(snmpsim_package.__file__).parent / "data" / "recorded"

COMMUNITIES = {
    "apc-rpdu2": RECORDINGS / "apc-rpdu2.snmprec",
    "ups-mib": RECORDINGS / "ups-mib.snmprec",
    "entity-sensor": RECORDINGS / "entity-sensor.snmprec",
    "host-resources": RECORDINGS / "host-resources.snmprec",
    "net-snmp-linux": RECORDINGS / "net-snmp-linux.snmprec",
    "if-mib": RECORDINGS / "if-mib.snmprec",
    "printer-mib": RECORDINGS / "printer-mib.snmprec",
    "linux-full-walk": SHIPPED_WALKS / "linux-full-walk.snmprec",
    "winxp-full-walk": SHIPPED_WALKS / "winxp-full-walk.snmprec",
}

SITE, DEVICE = "test-site", "dev-1"


@pytest.fixture(scope="module")
def agent(snmpsim):
    """One snmpsim process serving every recording, one community each."""
    agent = snmpsim.start(COMMUNITIES)
    yield agent
    agent.stop()


async def poll(engine, agent, community: str, profile: str | None = None, **device):
    source = make_source(engine, agent.address, {"version": "2c", "community": community}, profile,
                         site=SITE, name=DEVICE, **device)
    result = await source.poll()
    assert result.error is None, result.error
    assert result.problems == [], result.problems
    return result, source


def points(result, measurement: str, scope: str) -> dict[str, tuple[dict, dict]]:
    """{entity: (fields, tags)} for one measurement and scope."""
    out = {}
    for s in result.samples:
        if s.measurement == measurement and s.tags["scope"] == scope:
            assert s.tags["entity"] not in out, f"two {measurement}/{scope} points for {s.tags['entity']}"
            out[s.tags["entity"]] = (s.fields, s.tags)
    return out


def schema_tags(kind: str, scope: str, entity: str, label: str | None = None, **extra: str) -> dict[str, str]:
    tags = {"site": SITE, "device": DEVICE, "kind": kind, "scope": scope, "entity": entity, **extra}
    if label is not None:
        tags["label"] = label
    return tags


def raw_int(raw: dict, oid: str) -> int:
    return int(raw[oid][1])


def numeric_settings(raw: dict, oid: str) -> dict[str, float]:
    """The settings of a `TYPE:numeric|k=v,...` line (snmpsim's numeric variation)."""
    tag, value = raw[oid]
    assert tag.endswith(":numeric"), (oid, tag)
    return {k: float(v) for k, v in (kv.split("=") for kv in value.split(","))}


def assert_fields_typed(result) -> None:
    """Counts and states are ints, everything else floats, as docs/metrics.md says."""
    for s in result.samples:
        for name, value in s.fields.items():
            dimension = FIELDS[s.measurement][name]
            wanted = int if dimension in ("count", "state") else float
            assert type(value) is wanted, (s.measurement, name, value)


# --------------------------------------------------------------------------- loading

def test_every_shipped_profile_loads():
    loaded = load_profiles()
    names = sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))
    assert names and sorted(loaded.profiles) == names
    for name in names:
        profile = loaded.get(name)
        assert profile.metrics, f"{name} reads nothing"
        assert profile.path == SHIPPED_DIR / f"{name}.yaml"


def test_device_profiles_resolve_their_extends():
    ps = load_profiles()
    linux = ps.get("net-snmp-linux")
    assert linux.extends == ("host-resources", "if-mib")
    assert linux.metrics == ps.get("host-resources").metrics + ps.get("if-mib").metrics
    assert linux.kind == "host"
    ietf = ps.get("ietf-ups")
    assert ietf.metrics == ps.get("ups-mib").metrics and ietf.kind == "ups"


@pytest.mark.parametrize("path", sorted(RECORDINGS.glob("*.snmprec")), ids=lambda p: p.name)
def test_recordings_are_well_formed_and_sorted(path):
    """snmpsim answers GETNEXT from the file's order: it must be sorted by numeric OID."""
    previous: tuple[int, ...] = ()
    seen = set()
    for n, line in enumerate(path.read_text().splitlines(), 1):
        oid, tag, _value = line.split("|", 2)
        assert re.fullmatch(r"\d+(\.\d+)+", oid), f"{path.name}:{n}: bad OID {oid!r}"
        assert re.fullmatch(r"(2|4|6|64|65|66|67|70)(x|:numeric)?", tag), f"{path.name}:{n}: tag {tag!r}"
        key = tuple(int(x) for x in oid.split("."))
        assert key > previous, f"{path.name}:{n}: {oid} is out of order"
        previous = key
        seen.add(oid)
    for oid in ("1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0"):
        assert oid in seen, f"{path.name}: no {oid} (sysDescr/sysObjectID/sysUpTime/sysName)"


# --------------------------------------------------------------------------- matching

@pytest.mark.parametrize(("sysobjectid", "expected"), [
    ("1.3.6.1.4.1.318.1.3.4.6", "apc-rpdu2"),
    ("1.3.6.1.4.1.8072.3.2.10", "net-snmp-linux"),  # exact beats net-snmp's 8072.3.2.*
    ("1.3.6.1.4.1.8072.3.2.8", "net-snmp"),  # FreeBSD: only the wildcard matches
    ("1.3.6.1.4.1.311.1.1.3.1.1", "windows"),
    ("1.3.6.1.4.1.311.1.1.3.1.2", "windows"),
    ("1.3.6.1.2.1.33", "ietf-ups"),
    ("1.3.6.1.2.1.33.1", None),  # an exact pattern is not a prefix
    ("1.3.6.1.4.1.8072.3.2", None),  # a trailing * needs at least one more arc
    ("1.3.6.1.4.1.11.2.3.9.1", None),  # no printer model profile: use `profile: printer-mib`
])
def test_sysobjectid_picks_the_shipped_profile(sysobjectid, expected):
    match = load_profiles().match(sysobjectid)
    assert (match.name if match else None) == expected


def test_generic_profiles_are_never_matched():
    ps = load_profiles()
    for name in ("ups-mib", "entity-sensor", "host-resources", "if-mib", "printer-mib"):
        assert ps.get(name).sysobjectid == ()


def test_most_specific_pattern_wins(tmp_path):
    """Exact beats any wildcard; between wildcards, more literal arcs win."""
    (tmp_path / "any-8072.yaml").write_text(textwrap.dedent("""\
        sysobjectid: 1.3.6.1.4.1.8072.*
        extends: [if-mib]
        kind: switch
        """))
    (tmp_path / "inner-star.yaml").write_text(textwrap.dedent("""\
        sysobjectid: 1.3.6.1.4.1.8072.3.*.10
        extends: [if-mib]
        """))
    ps = load_profiles([tmp_path])
    assert ps.match("1.3.6.1.4.1.8072.3.2.10").name == "net-snmp-linux"  # exact: 11 arcs
    assert ps.match("1.3.6.1.4.1.8072.3.1.10").name == "inner-star"  # 10 literal arcs
    assert ps.match("1.3.6.1.4.1.8072.3.2.8").name == "net-snmp"  # 10 literal arcs vs 8
    assert ps.match("1.3.6.1.4.1.8072.9.9").name == "any-8072"


def test_a_user_profile_of_the_same_name_replaces_the_shipped_one(tmp_path):
    (tmp_path / "net-snmp-linux.yaml").write_text(textwrap.dedent("""\
        sysobjectid: 1.3.6.1.4.1.8072.3.2.10
        extends: [host-resources]
        kind: server
        """))
    ps = load_profiles([tmp_path])
    linux = ps.match("1.3.6.1.4.1.8072.3.2.10")
    assert linux.path == tmp_path / "net-snmp-linux.yaml" and linux.kind == "server"
    assert ps.get("net-snmp").kind == "host"  # the others stay


# --------------------------------------------------------------------------- readings

APC = "1.3.6.1.4.1.318.1.1.26"


async def test_apc_rpdu2(agent, snmp_engine):
    raw = snmprec(COMMUNITIES["apc-rpdu2"])
    result, source = await poll(snmp_engine, agent, "apc-rpdu2", tags={"room": "hall-1"})
    assert source.reader.profile.name == "apc-rpdu2"
    assert_fields_typed(result)

    (fields, tags), = points(result, "power", "device").values()
    assert fields == {
        "watts": raw_int(raw, f"{APC}.4.3.1.5.1") * 10.0,  # hundredths of kW: 152 -> 1520 W
        "energy_kwh": raw_int(raw, f"{APC}.4.3.1.9.1") / 10,  # tenths of kWh
    }
    assert tags == schema_tags("pdu", "device", "total", raw[f"{APC}.4.3.1.3.1"][1], room="hall-1")

    phases = points(result, "power", "phase")
    assert list(phases) == [raw[f"{APC}.6.3.1.3.1"][1]]  # entity = rPDU2PhaseStatusNumber
    fields, tags = phases["1"]
    assert fields == {
        "watts": raw_int(raw, f"{APC}.6.3.1.7.1") * 10.0,
        "amps": raw_int(raw, f"{APC}.6.3.1.5.1") / 10,  # tenths of A: 66 -> 6.6
        "volts": float(raw_int(raw, f"{APC}.6.3.1.6.1")),
    }
    assert tags == schema_tags("pdu", "phase", "1", pdu_module=raw[f"{APC}.6.3.1.2.1"][1], room="hall-1")

    outlets = points(result, "power", "outlet")
    rows = sorted(o.rsplit(".", 1)[1] for o in raw if o.startswith(f"{APC}.9.4.3.1.7."))
    assert sorted(outlets) == sorted(raw[f"{APC}.9.4.3.1.4.{r}"][1] for r in rows)
    for r in rows:
        number = raw[f"{APC}.9.4.3.1.4.{r}"][1]
        fields, tags = outlets[number]
        assert fields == {
            "watts": float(raw_int(raw, f"{APC}.9.4.3.1.7.{r}")),
            "energy_kwh": raw_int(raw, f"{APC}.9.4.3.1.11.{r}") / 10,
        }
        assert tags == schema_tags("pdu", "outlet", number, raw[f"{APC}.9.4.3.1.3.{r}"][1], room="hall-1")


UPS = "1.3.6.1.2.1.33.1"


def check_ups(result, raw) -> None:
    assert_fields_typed(result)
    outputs = points(result, "power", "output")
    loads = points(result, "ups", "output")
    lines = sorted(o.rsplit(".", 1)[1] for o in raw if o.startswith(f"{UPS}.4.4.1.4."))
    assert sorted(outputs) == sorted(loads) == lines == ["1", "2", "3"]
    for line in lines:
        fields, tags = outputs[line]
        assert fields == {
            "watts": float(raw_int(raw, f"{UPS}.4.4.1.4.{line}")),
            "volts": float(raw_int(raw, f"{UPS}.4.4.1.2.{line}")),
            "amps": raw_int(raw, f"{UPS}.4.4.1.3.{line}") / 10,  # 0.1 RMS Amp
        }
        assert tags == schema_tags("ups", "output", line)
        fields, tags = loads[line]
        assert fields == {"load_percent": float(raw_int(raw, f"{UPS}.4.4.1.5.{line}"))}
        assert tags == schema_tags("ups", "output", line)

    inlets = points(result, "power", "inlet")
    assert sorted(inlets) == ["1", "2", "3"]
    for line, (fields, tags) in inlets.items():
        assert fields == {
            "watts": float(raw_int(raw, f"{UPS}.3.3.1.5.{line}")),
            "volts": float(raw_int(raw, f"{UPS}.3.3.1.3.{line}")),
            "amps": raw_int(raw, f"{UPS}.3.3.1.4.{line}") / 10,
        }
        assert tags == schema_tags("ups", "inlet", line)

    (fields, tags), = points(result, "ups", "device").values()
    assert fields == {
        "battery_percent": float(raw_int(raw, f"{UPS}.2.4.0")),
        "runtime_s": raw_int(raw, f"{UPS}.2.3.0") * 60.0,  # minutes
        "on_battery": int(raw_int(raw, f"{UPS}.4.1.0") == 5),  # upsOutputSource battery(5)
    }
    assert fields["on_battery"] == 0  # normal(3) in the recording
    assert tags == schema_tags("ups", "device", "total")
    assert {s.measurement for s in result.samples} == {"power", "ups"}


async def test_ups_mib_matched_as_ietf_ups(agent, snmp_engine):
    raw = snmprec(COMMUNITIES["ups-mib"])
    assert raw["1.3.6.1.2.1.1.2.0"][1] == "1.3.6.1.2.1.33"
    result, source = await poll(snmp_engine, agent, "ups-mib")
    assert source.reader.profile.name == "ietf-ups"
    check_ups(result, raw)


async def test_ups_mib_by_name(agent, snmp_engine):
    result, source = await poll(snmp_engine, agent, "ups-mib", profile="ups-mib")
    assert source.reader.profile.name == "ups-mib"
    check_ups(result, snmprec(COMMUNITIES["ups-mib"]))


SENSOR = "1.3.6.1.2.1.99.1.1.1"
ENT_NAME = "1.3.6.1.2.1.47.1.1.1.1.7"


async def test_entity_sensor_reads_only_watts_sensors_scaled(agent, snmp_engine):
    raw = snmprec(COMMUNITIES["entity-sensor"])
    result, _ = await poll(snmp_engine, agent, "entity-sensor", profile="entity-sensor", kind="switch")
    assert_fields_typed(result)
    psus = points(result, "power", "psu")
    watts_rows = sorted(o.rsplit(".", 1)[1] for o in raw if o.startswith(f"{SENSOR}.1.") and raw[o][1] == "6")
    other_rows = [o.rsplit(".", 1)[1] for o in raw if o.startswith(f"{SENSOR}.1.") and raw[o][1] != "6"]
    assert sorted(psus) == watts_rows == ["101", "201"] and other_rows  # volts, celsius, rpm skipped
    for row in watts_rows:
        value = raw_int(raw, f"{SENSOR}.4.{row}")
        scale = raw_int(raw, f"{SENSOR}.2.{row}")  # SI prefix: units(9) = 10^0, milli(8) = 10^-3
        precision = raw_int(raw, f"{SENSOR}.3.{row}")  # decimal places
        fields, tags = psus[row]
        assert fields["watts"] == pytest.approx(value * 10.0 ** (3 * (scale - 9)) / 10**precision)
        assert tags == schema_tags("switch", "psu", row, raw[f"{ENT_NAME}.{row}"][1])
    assert psus["101"][0] == {"watts": pytest.approx(182.5)}  # 182500 mW
    assert psus["201"][0] == {"watts": pytest.approx(187.3)}  # 1873 tenths of W
    assert len(result.samples) == 2


HR = "1.3.6.1.2.1.25"
IF, IFX = "1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.31.1.1.1"


def check_host(result, raw, kind: str = "host") -> None:
    (fields, tags), = points(result, "host", "device").values()
    assert fields == {"uptime_s": raw_int(raw, f"{HR}.1.1.0") / 100}  # hrSystemUptime: centiseconds
    assert tags == schema_tags(kind, "device", "total")
    cpus = points(result, "host", "cpu")
    rows = sorted(o.rsplit(".", 1)[1] for o in raw if o.startswith(f"{HR}.3.3.1.2."))
    assert sorted(cpus) == rows and rows
    for row in rows:
        fields, tags = cpus[row]
        assert fields == {"cpu_load_percent": float(raw_int(raw, f"{HR}.3.3.1.2.{row}"))}
        assert tags == schema_tags(kind, "cpu", row, raw[f"{HR}.3.2.1.3.{row}"][1])


def check_ports(result, raw, kind: str, hc: bool = True) -> None:
    ports = points(result, "port", "port")
    rows = sorted(o.rsplit(".", 1)[1] for o in raw if o.startswith(f"{IF}.8."))
    assert sorted(ports) == rows and rows
    for row in rows:
        fields, tags = ports[row]
        expected = {"oper_up": int(raw_int(raw, f"{IF}.8.{row}") == 1)}
        if hc:
            expected["speed_bps"] = raw_int(raw, f"{IFX}.15.{row}") * 1e6  # ifHighSpeed: Mbit/s
            for name, col in (("in_octets", 6), ("out_octets", 10)):
                if raw[f"{IFX}.{col}.{row}"][0] == "70":
                    expected[name] = raw_int(raw, f"{IFX}.{col}.{row}")
                else:  # a moving counter: checked by the caller
                    expected[name] = fields.get(name)
        assert fields == expected, row
        label = raw[f"{IFX}.1.{row}"][1] if hc else None
        assert tags == schema_tags(kind, "port", row, label)


async def test_host_resources(agent, snmp_engine):
    raw = snmprec(COMMUNITIES["host-resources"])
    result, _ = await poll(snmp_engine, agent, "host-resources", profile="host-resources")
    assert_fields_typed(result)
    check_host(result, raw)
    # hrDeviceDescr has a row for a network device too: no CPU point for it.
    assert "262145" not in points(result, "host", "cpu")
    assert {s.measurement for s in result.samples} == {"host"}


async def test_net_snmp_linux_matched_with_host_and_ports(agent, snmp_engine):
    raw = snmprec(COMMUNITIES["net-snmp-linux"])
    result, source = await poll(snmp_engine, agent, "net-snmp-linux")
    assert source.reader.profile.name == "net-snmp-linux"
    assert_fields_typed(result)
    check_host(result, raw)
    check_ports(result, raw, "host")
    ports = points(result, "port", "port")
    assert ports["2"][0]["oper_up"] == 1 and ports["3"][0]["oper_up"] == 0  # eno2: no carrier
    assert ports["2"][0]["in_octets"] == 484198757123  # beyond 2^32: the 64-bit counter
    assert ports["3"][0]["speed_bps"] == 0.0


async def test_if_mib_counters_move(agent, snmp_engine):
    raw = snmprec(COMMUNITIES["if-mib"])
    result, _ = await poll(snmp_engine, agent, "if-mib", profile="if-mib", kind="switch")
    assert_fields_typed(result)
    check_ports(result, raw, "switch")
    ports = points(result, "port", "port")
    assert ports["10104"][0]["oper_up"] == 0  # admin down
    assert ports["10102"][0]["speed_bps"] == 100e6

    # Gi1/0/1's octet counters are snmpsim `numeric` lines: initial + rate * seconds since
    # the agent started. They must be read as whole octets, at least the initial value,
    # and grow between polls.
    first = ports["10101"][0]
    for name, col in (("in_octets", 6), ("out_octets", 10)):
        settings = numeric_settings(raw, f"{IFX}.{col}.10101")
        assert first[name] >= settings["initial"]
    await asyncio.sleep(0.2)  # snmpsim's counter moves with the clock
    result2, _ = await poll(snmp_engine, agent, "if-mib", profile="if-mib", kind="switch")
    second = points(result2, "port", "port")["10101"][0]
    assert second["in_octets"] > first["in_octets"] and second["out_octets"] > first["out_octets"]


async def test_printer_mib(agent, snmp_engine):
    raw = snmprec(COMMUNITIES["printer-mib"])
    result, _ = await poll(snmp_engine, agent, "printer-mib", profile="printer-mib")
    assert_fields_typed(result)
    markers = points(result, "printer", "marker")
    assert list(markers) == ["1.1"]  # hrDeviceIndex.prtMarkerIndex
    assert raw["1.3.6.1.2.1.43.10.2.1.3.1.1"][1] == "7"  # counted in impressions
    fields, tags = markers["1.1"]
    assert fields == {"pages": raw_int(raw, "1.3.6.1.2.1.43.10.2.1.4.1.1")}
    assert tags == schema_tags("printer", "marker", "1.1")
    printers = points(result, "printer", "printer")
    fields, tags = printers["1"]
    assert fields == {"status": raw_int(raw, f"{HR}.3.5.1.1.1")} == {"status": 3}  # idle(3)
    assert tags == schema_tags("printer", "printer", "1", raw[f"{HR}.3.2.1.3.1"][1])
    assert len(result.samples) == 2


async def test_a_device_no_profile_matches_is_reported(agent, snmp_engine):
    source = make_source(snmp_engine, agent.address, {"version": "2c", "community": "printer-mib"})
    result = await source.poll()
    assert result.error is not None and "1.3.6.1.4.1.11.2.3.9.1" in result.error


async def test_snmpsim_shipped_linux_walk(agent, snmp_engine):
    """A real Linux host's walk (snmpsim's linux-full-walk) matches net-snmp-linux."""
    raw = snmprec(COMMUNITIES["linux-full-walk"])
    result, source = await poll(snmp_engine, agent, "linux-full-walk")
    assert source.reader.profile.name == "net-snmp-linux"
    assert_fields_typed(result)
    check_host(result, raw)
    check_ports(result, raw, "host")
    assert sorted(points(result, "host", "cpu")) == ["768", "769"]


async def test_snmpsim_shipped_windows_walk(agent, snmp_engine):
    """Windows XP's SNMP service: HOST-RESOURCES and ifTable, but no ifXTable, so ports
    carry oper_up only (no counters, no speed, no ifName label)."""
    raw = snmprec(COMMUNITIES["winxp-full-walk"])
    result, source = await poll(snmp_engine, agent, "winxp-full-walk")
    assert source.reader.profile.name == "windows"
    assert_fields_typed(result)
    check_host(result, raw)
    check_ports(result, raw, "host", hc=False)


# --------------------------------------------------------------------------- bad profiles


def load_bad(tmp_path: Path, name: str, text: str) -> tuple[Path, str]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(InputError) as caught:
        load_profiles([tmp_path])
    return path, str(caught.value)


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_malformed_oid_is_named_with_file_line_and_field(tmp_path):
    path, message = load_bad(tmp_path, "bad-oid", """\
        sysobjectid: 1.3.6.1.4.1.99999.1
        metrics:
          - table: {OID: 1.3.6.1.4.1.99999.1, name: exampleTable}
            symbols:
              - {OID: 1.3.6.1.4.1.99999.1.1.x, name: examplePower, field: watts, unit: W}
        """)
    assert f"{path}:{line_of(path, '99999.1.1.x')}:" in message
    assert "metrics[0].symbols[0].OID" in message and "1.3.6.1.4.1.99999.1.1.x" in message


def test_unknown_field_is_named_with_file_line_and_field(tmp_path):
    path, message = load_bad(tmp_path, "bad-field", """\
        metrics:
          - MIB: EXAMPLE-MIB
            symbol:
              OID: 1.3.6.1.4.1.99999.2.0
              name: examplePower
              field: kilowatts
        """)
    assert re.search(rf"{re.escape(str(path))}:\d+: metrics\[0\]", message), message
    assert "field 'kilowatts' is not in measurement 'power'" in message and "examplePower" in message
    assert "watts" in message  # what was expected


def test_unit_of_the_wrong_dimension_is_named_with_file_line_and_field(tmp_path):
    path, message = load_bad(tmp_path, "bad-unit", """\
        metrics:
          - MIB: EXAMPLE-MIB
            symbol:
              OID: 1.3.6.1.4.1.99999.2.0
              name: examplePower
              field: watts
              unit: kWh
        """)
    assert re.search(rf"{re.escape(str(path))}:\d+: metrics\[0\]", message), message
    assert "unit kWh measures energy, but field watts is power" in message


def test_unknown_extends_is_named_with_file_and_field(tmp_path):
    path, message = load_bad(tmp_path, "bad-extends", """\
        sysobjectid: 1.3.6.1.4.1.99999.1
        extends: [ups-mib, no-such-profile]
        """)
    assert str(path) in message and "extends" in message and "'no-such-profile'" in message
    assert "ups-mib" in message  # the known profiles are listed


def test_unknown_extends_names_the_line(tmp_path):
    path, message = load_bad(tmp_path, "bad-extends", """\
        sysobjectid: 1.3.6.1.4.1.99999.1
        extends: [ups-mib, no-such-profile]
        """)
    assert f"{path}:{line_of(path, 'extends')}:" in message


def test_unknown_field_names_the_line_of_the_field(tmp_path):
    path, message = load_bad(tmp_path, "bad-field", """\
        metrics:
          - MIB: EXAMPLE-MIB
            symbol:
              OID: 1.3.6.1.4.1.99999.2.0
              name: examplePower
              field: kilowatts
        """)
    assert f"{path}:{line_of(path, 'kilowatts')}:" in message


def test_every_problem_in_every_file_is_reported_at_once(tmp_path):
    (tmp_path / "one.yaml").write_text("metrics:\n  - symbol: {OID: 1.3.x, name: a, field: watts}\n")
    (tmp_path / "two.yaml").write_text("kind: toaster\n")
    with pytest.raises(InputError) as caught:
        load_profiles([tmp_path])
    message = str(caught.value)
    assert f"{tmp_path / 'one.yaml'}:2:" in message and f"{tmp_path / 'two.yaml'}:1:" in message
    assert "unknown kind 'toaster'" in message


def test_a_user_profile_wins_a_sysobjectid_tie_with_a_shipped_one(tmp_path):
    shipped = load_profiles().match("1.3.6.1.4.1.318.1.3.4.6")
    assert shipped is not None and shipped.name == "apc-rpdu2"
    (tmp_path / "my-apc.yaml").write_text(
        "sysobjectid: 1.3.6.1.4.1.318.1.3.4.6\nkind: pdu\nextends: [apc-rpdu2]\n"
    )
    assert load_profiles([tmp_path]).match("1.3.6.1.4.1.318.1.3.4.6").name == "my-apc"
