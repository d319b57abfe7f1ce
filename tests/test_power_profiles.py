"""The power-device profiles (Raritan, ServerTech, Eaton, APC UPS, CyberPower, PoE) polled
from their recordings through a real snmpsim agent, with every engine.

Expected values are computed here from the recordings' raw lines and the scaling each
MIB states, so a profile that reads the wrong column, misses a scale or mixes up rows
fails. One agent serves every recording, each under its own community."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import snmpsim

from collector.profiles import load_profiles
from greenwatch.core.yamlfile import InputError
from snmphelp import by_entity, make_source, profiles, tags_of

RECORDINGS = Path(__file__).parent / "recordings"
# snmpsim's own recording of a real Eaton 9PX (sysObjectID 1.3.6.1.4.1.705.1, XUPS-MIB).
NINE_PX = Path(snmpsim.__file__).parent / "data" / "recorded" / "eaton-9PX-partial-walk.snmprec"

POWER_PROFILES = ("raritan-pdu2", "servertech-sentry4", "servertech-sentry3", "eaton-epdu",
                  "apc-ups", "cyberpower-pdu", "power-ethernet")

# The recordings' sysObjectIDs and the profile each must select.
EXPECTED_MATCH = {
    "raritan-pdu2": "raritan-pdu2",
    "servertech-sentry4": "servertech-sentry4",
    "servertech-sentry3": "servertech-sentry3",
    "eaton-epdu": "eaton-epdu",
    "apc-ups": "apc-ups",
    "cyberpower-pdu": "cyberpower-pdu",
}

# A first-generation CyberPower ePDU (CPS-MIB ePDU branch, 3808.1.1.3): outlet rows only.
CPS_EPDU1 = """\
1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.3808.1.1.3
1.3.6.1.4.1.3808.1.1.3.3.5.1.1.1.1|2|1
1.3.6.1.4.1.3808.1.1.3.3.5.1.1.1.2|2|2
1.3.6.1.4.1.3808.1.1.3.3.5.1.1.2.1|4|printer-3f
1.3.6.1.4.1.3808.1.1.3.3.5.1.1.2.2|4|Outlet2
1.3.6.1.4.1.3808.1.1.3.3.5.1.1.8.1|66|37
1.3.6.1.4.1.3808.1.1.3.3.5.1.1.8.2|66|0
1.3.6.1.4.1.3808.1.1.3.3.5.1.1.13.1|66|2291
1.3.6.1.4.1.3808.1.1.3.3.5.1.1.13.2|66|0
"""


def raw(path: Path) -> dict[str, str]:
    """A recording's raw values by OID (hex strings, type 4x, decoded)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        oid, tag, value = line.split("|", 2)
        out[oid] = bytes.fromhex(value).decode() if tag == "4x" else value
    return out


def rows_under(rec: dict[str, str], column: str) -> dict[str, str]:
    """{row index: raw value} of one column of a recording."""
    prefix = column + "."
    return {oid[len(prefix):]: v for oid, v in rec.items() if oid.startswith(prefix)}


def points(result, measurement: str, scope: str) -> dict[tuple[str, str], dict]:
    """{(entity, pdu_module or ""): fields}: devices in a daisy chain share entity 'total'."""
    out = {}
    for s in result.samples:
        if s.measurement == measurement and s.tags.get("scope") == scope:
            key = (s.tags["entity"], s.tags.get("pdu_module", ""))
            assert key not in out, f"two {measurement} points for {scope} {key}"
            out[key] = s.fields
    return out


@pytest.fixture(scope="module")
def agent(snmpsim, tmp_path_factory):
    variants = tmp_path_factory.mktemp("variants")
    # The same Smart-UPS at a load too low to report efficiency (MIB code -2).
    low = variants / "apc-ups-lowload.snmprec"
    low.write_text((RECORDINGS / "apc-ups.snmprec").read_text().replace(
        "1.3.6.1.4.1.318.1.1.1.4.3.5.0|2|934", "1.3.6.1.4.1.318.1.1.1.4.3.5.0|2|-2"))
    assert "|-2" in low.read_text()
    epdu1 = variants / "cps-epdu1.snmprec"
    epdu1.write_text(CPS_EPDU1)
    communities = {name: RECORDINGS / f"{name}.snmprec" for name in POWER_PROFILES}
    communities.update({"eaton-9px": NINE_PX, "apc-ups-lowload": low, "cps-epdu1": epdu1})
    running = snmpsim.start(communities)
    yield running
    running.stop()


async def poll(engine, agent, community: str, profile: str | None = None):
    """Poll one recording; with no profile, the sysObjectID picks it."""
    source = make_source(engine, agent.address, {"version": "2c", "community": community}, profile)
    result = await source.poll()
    assert result.error is None, result.error
    assert result.problems == [], result.problems
    return source, result


# --- sysObjectID matching (no network) ---------------------------------------------------

@pytest.mark.parametrize("recording", sorted(EXPECTED_MATCH))
def test_sysobjectid_picks_the_profile(recording):
    oid = raw(RECORDINGS / f"{recording}.snmprec")["1.3.6.1.2.1.1.2.0"]
    profile = profiles().match(oid)
    assert profile is not None and profile.name == EXPECTED_MATCH[recording]


def test_sysobjectid_of_the_recorded_eaton_9px_picks_xups():
    oid = raw(NINE_PX)["1.3.6.1.2.1.1.2.0"]
    assert oid == "1.3.6.1.4.1.705.1"
    assert profiles().match(oid).name == "eaton-ups-xups"


def test_the_most_specific_pattern_wins(tmp_path):
    # A site's catch-all profiles for whole vendors beside the shipped ones: a vendor-wide
    # wildcard never takes a device a shipped profile names more precisely.
    (tmp_path / "eaton-any.yaml").write_text("sysobjectid: 1.3.6.1.4.1.534.*\nkind: meter\n")
    (tmp_path / "raritan-any.yaml").write_text("sysobjectid: 1.3.6.1.4.1.13742.*\nkind: pdu\n")
    (tmp_path / "apc-any.yaml").write_text("sysobjectid: 1.3.6.1.4.1.318.1.3.*\nkind: ups\n")
    ps = load_profiles([tmp_path])
    assert ps.match("1.3.6.1.4.1.534.6.6.7").name == "eaton-epdu"          # exact beats wildcard
    assert ps.match("1.3.6.1.4.1.534.1").name == "eaton-ups-xups"
    assert ps.match("1.3.6.1.4.1.534.10.1").name == "eaton-any"            # an Eaton ATS
    assert ps.match("1.3.6.1.4.1.13742.6").name == "raritan-pdu2"
    assert ps.match("1.3.6.1.4.1.13742.6.1.2").name == "raritan-pdu2"      # 13742.6.* beats 13742.*
    assert ps.match("1.3.6.1.4.1.13742.4").name == "raritan-any"           # PX1: PDU-MIB, not PDU2
    assert ps.match("1.3.6.1.4.1.318.1.3.2.12").name == "apc-ups"          # 318.1.3.2.* beats 318.1.3.*
    assert ps.match("1.3.6.1.4.1.318.1.3.4.6").name == "apc-rpdu2"
    assert ps.match("1.3.6.1.4.1.318.1.3.11.1").name == "apc-any"          # an APC ATS
    assert ps.match("1.3.6.1.4.1.1718.4").name == "servertech-sentry4"
    assert ps.match("1.3.6.1.4.1.1718.3").name == "servertech-sentry3"


# --- Raritan PX2/PX3 ------------------------------------------------------------------------

async def test_raritan_pdu2(snmp_engine, agent):
    source, result = await poll(snmp_engine, agent, "raritan-pdu2")
    assert source.reader.profile.name == "raritan-pdu2"
    rec = raw(RECORDINGS / "raritan-pdu2.snmprec")
    base = "1.3.6.1.4.1.13742.6"

    def reading(table: str, config: str, pdu: str, entity: str, sensor_type: int) -> float:
        value = float(rec[f"{base}.5.{table}.3.1.4.{pdu}.{entity}.{sensor_type}"])
        digits = int(rec[f"{base}.3.{config}.4.1.7.{pdu}.{entity}.{sensor_type}"])
        return value / 10**digits

    # Inlet 1 of PDU 1: watts (type 5, W) and energy (type 8, Wh) merged into one point.
    inlets = points(result, "power", "inlet")
    assert inlets == {("1", "1"): {
        "watts": pytest.approx(reading("2", "3", "1", "1", 5)),
        "energy_kwh": pytest.approx(reading("2", "3", "1", "1", 8) / 1000),
        "amps": pytest.approx(reading("2", "3", "1", "1", 1)),
    }}
    assert inlets[("1", "1")]["amps"] == pytest.approx(4.213)  # 4213 with 3 decimal digits
    assert tags_of(result, "power", "inlet", "1")["label"] == rec[f"{base}.3.3.3.1.2.1.1"]

    outlets = points(result, "power", "outlet")
    names = rows_under(rec, f"{base}.3.5.3.1.3")      # outletName, index pdu.outlet
    assert sorted(outlets) == [(i.split(".")[1], "1") for i in sorted(names)]
    for index, name in names.items():
        pdu, outlet = index.split(".")
        assert outlets[(outlet, pdu)] == {
            "watts": pytest.approx(reading("4", "5", pdu, outlet, 5)),
            "energy_kwh": pytest.approx(reading("4", "5", pdu, outlet, 8) / 1000),
        }
        tags = tags_of(result, "power", "outlet", outlet)
        assert tags.get("label") == (name or None)  # an unnamed outlet has no label tag
        assert tags["pdu_module"] == pdu and tags["kind"] == "pdu"
    assert outlets[("5", "1")]["watts"] == 341.0


# --- ServerTech ---------------------------------------------------------------------------

async def test_servertech_sentry4(snmp_engine, agent):
    source, result = await poll(snmp_engine, agent, "servertech-sentry4")
    assert source.reader.profile.name == "servertech-sentry4"
    rec = raw(RECORDINGS / "servertech-sentry4.snmprec")
    base = "1.3.6.1.4.1.1718.4.1"

    cords = by_entity(result, "power", "inlet")
    ids = rows_under(rec, f"{base}.3.2.1.2")           # st4InputCordID
    assert cords == {
        cid: {"watts": float(rec[f"{base}.3.3.1.3.{i}"]),              # W
              "energy_kwh": pytest.approx(int(rec[f"{base}.3.3.1.10.{i}"]) / 10)}  # tenth kWh
        for i, cid in ids.items()
    }
    assert tags_of(result, "power", "inlet", "AA")["label"] == "Master_Cord_A"

    outlets = by_entity(result, "power", "outlet")
    expected = {}
    for i, oid_id in rows_under(rec, f"{base}.8.2.1.2").items():   # st4OutletID
        watts, wh = int(rec[f"{base}.8.3.1.7.{i}"]), int(rec[f"{base}.8.3.1.14.{i}"])
        if watts < 0:   # -1: not measured; such an outlet gets no point at all
            continue
        expected[oid_id] = {"watts": float(watts), "energy_kwh": pytest.approx(wh / 1000)}  # Wh
    assert outlets == expected
    assert "AA6" not in outlets and len(outlets) == 5
    assert tags_of(result, "power", "outlet", "AA4")["label"] == "rack12-nas"


async def test_servertech_sentry3(snmp_engine, agent):
    source, result = await poll(snmp_engine, agent, "servertech-sentry3")
    assert source.reader.profile.name == "servertech-sentry3"
    assert source.target.max_repetitions == 4   # snmp_exporter's setting for Sentry3
    rec = raw(RECORDINGS / "servertech-sentry3.snmprec")
    base = "1.3.6.1.4.1.1718.3.2"

    assert by_entity(result, "power", "inlet") == {
        "AA": {"watts": float(rec[f"{base}.2.1.12.1.1"]),
               "energy_kwh": pytest.approx(int(rec[f"{base}.2.1.16.1.1"]) / 10)},
    }
    outlets = by_entity(result, "power", "outlet")
    expected = {}
    for i, oid_id in rows_under(rec, f"{base}.3.1.2").items():
        watts, wh = int(rec[f"{base}.3.1.14.{i}"]), int(rec[f"{base}.3.1.18.{i}"])
        if watts >= 0:
            expected[oid_id] = {"watts": float(watts), "energy_kwh": pytest.approx(wh / 1000)}
    assert outlets == expected and "AA5" not in outlets
    assert tags_of(result, "power", "outlet", "AA1")["label"] == "sql-01"


# --- Eaton ----------------------------------------------------------------------------------

async def test_eaton_epdu(snmp_engine, agent):
    source, result = await poll(snmp_engine, agent, "eaton-epdu")
    assert source.reader.profile.name == "eaton-epdu"
    rec = raw(RECORDINGS / "eaton-epdu.snmprec")
    base = "1.3.6.1.4.1.534.6.6.7"

    assert points(result, "power", "inlet") == {
        ("1", "0"): {"watts": float(rec[f"{base}.3.5.1.4.0.1"]),
                     "energy_kwh": pytest.approx(int(rec[f"{base}.3.5.1.5.0.1"]) / 1000)},
    }
    outlets = points(result, "power", "outlet")
    names = rows_under(rec, f"{base}.6.1.1.3")
    assert outlets == {
        (index.split(".")[1], index.split(".")[0]): {
            "watts": float(rec[f"{base}.6.5.1.3.{index}"]),
            "energy_kwh": pytest.approx(int(rec[f"{base}.6.5.1.4.{index}"]) / 1000),
        }
        for index in names
    }
    assert tags_of(result, "power", "outlet", "4")["label"] == "core-sw-1"


async def test_eaton_9px_recorded_by_snmpsim(snmp_engine, agent):
    source, result = await poll(snmp_engine, agent, "eaton-9px")
    assert source.reader.profile.name == "eaton-ups-xups"
    rec = raw(NINE_PX)
    xups = "1.3.6.1.4.1.534.1"
    watts = {i: float(v) for i, v in rows_under(rec, f"{xups}.4.4.1.4").items()}   # xupsOutputWatts
    assert watts == {"1": 50.0}
    assert points(result, "power", "output") == {
        ("1", ""): {"watts": watts["1"]},
        ("total", ""): {"energy_kwh": pytest.approx(int(rec[f"{xups}.4.7.0"]) / 1000)},  # Wh
    }
    assert by_entity(result, "ups", "device") == {"total": {"load_percent": float(rec[f"{xups}.4.1.0"])}}
    # The 9PX reports 0 W input (and 0 A): it does not meter its input. No false zero.
    assert rows_under(rec, f"{xups}.3.4.1.4") == {"1": "0"}
    assert by_entity(result, "power", "inlet") == {}
    assert tags_of(result, "power", "output", "1")["kind"] == "ups"


# --- APC Smart-UPS -----------------------------------------------------------------------------

async def test_apc_ups(snmp_engine, agent):
    source, result = await poll(snmp_engine, agent, "apc-ups")
    assert source.reader.profile.name == "apc-ups"
    rec = raw(RECORDINGS / "apc-ups.snmprec")
    ups = "1.3.6.1.4.1.318.1.1.1"
    assert by_entity(result, "power", "output") == {"total": {
        "watts": float(rec[f"{ups}.4.2.8.0"]),                                  # W
        "energy_kwh": pytest.approx(int(rec[f"{ups}.4.3.6.0"]) / 100),          # hundredths of kWh
    }}
    assert by_entity(result, "ups", "device") == {"total": {
        "load_percent": pytest.approx(int(rec[f"{ups}.4.3.3.0"]) / 10),         # tenths of %
        "efficiency_percent": pytest.approx(int(rec[f"{ups}.4.3.5.0"]) / 10),
    }}
    assert by_entity(result, "ups", "device")["total"]["efficiency_percent"] == pytest.approx(93.4)
    assert tags_of(result, "ups", "device", "total")["kind"] == "ups"


async def test_apc_ups_efficiency_code_is_not_an_efficiency(snmp_engine, agent):
    # upsHighPrecOutputEfficiency -2: "Load is too low to report efficiency".
    _, result = await poll(snmp_engine, agent, "apc-ups-lowload")
    fields = by_entity(result, "ups", "device")["total"]
    assert "efficiency_percent" not in fields
    assert fields["load_percent"] == pytest.approx(29.7)
    assert by_entity(result, "power", "output")["total"]["watts"] == 812.0


# --- CyberPower ----------------------------------------------------------------------------

async def test_cyberpower_epdu2_daisy_chain(snmp_engine, agent):
    source, result = await poll(snmp_engine, agent, "cyberpower-pdu")
    assert source.reader.profile.name == "cyberpower-pdu"
    rec = raw(RECORDINGS / "cyberpower-pdu.snmprec")
    dev = "1.3.6.1.4.1.3808.1.1.6.3.4.1"
    out = "1.3.6.1.4.1.3808.1.1.6.6.2.4.1"
    assert points(result, "power", "device") == {
        ("total", rec[f"{dev}.2.{i}"]): {
            "watts": float(rec[f"{dev}.18.{i}"]),                               # W
            "energy_kwh": pytest.approx(int(rec[f"{dev}.9.{i}"]) / 10),         # tenths of kWh
        }
        for i in rows_under(rec, f"{dev}.1")
    }
    assert points(result, "power", "outlet") == {
        (rec[f"{out}.3.{i}"], rec[f"{out}.2.{i}"]): {
            "watts": float(rec[f"{out}.7.{i}"]),
            "energy_kwh": pytest.approx(int(rec[f"{out}.11.{i}"]) / 10),
        }
        for i in rows_under(rec, f"{out}.1")
    }
    labels = {(s.tags["entity"], s.tags["pdu_module"]): s.tags.get("label")
              for s in result.samples if s.tags["scope"] == "outlet"}
    assert labels[("1", "2")] == "nas-01" and labels[("3", "1")] is None


async def test_cyberpower_first_generation_epdu(snmp_engine, agent):
    source, result = await poll(snmp_engine, agent, "cps-epdu1")
    assert source.reader.profile.name == "cyberpower-pdu"
    assert by_entity(result, "power", "outlet") == {
        "1": {"watts": 37.0, "energy_kwh": pytest.approx(229.1)},
        "2": {"watts": 0.0, "energy_kwh": 0.0},
    }
    assert tags_of(result, "power", "outlet", "1")["label"] == "printer-3f"


# --- Power over Ethernet ---------------------------------------------------------------------

async def test_power_ethernet(snmp_engine, agent):
    # A switch's own profile extends power-ethernet; here it is named in the config.
    source, result = await poll(snmp_engine, agent, "power-ethernet", profile="power-ethernet")
    rec = raw(RECORDINGS / "power-ethernet.snmprec")
    mib = "1.3.6.1.2.1.105.1.3.1.1"
    used = rows_under(rec, f"{mib}.4")                  # pethMainPseConsumptionPower, W
    assert by_entity(result, "power", "output") == {g: {"watts": float(w)} for g, w in used.items()}
    assert [s.tags["scope"] for s in result.samples] == ["output", "output"]
    # The nominal budget (pethMainPsePower) is capacity, not a reading: never written.
    budgets = {float(v) for v in rows_under(rec, f"{mib}.2").values()}
    assert not budgets & {s.fields["watts"] for s in result.samples}
    assert tags_of(result, "power", "output", "1")["kind"] == "switch"


# --- the profile keys these profiles added ----------------------------------------------------

@pytest.mark.parametrize("metric, message", [
    ("""\
      - table: {OID: 1.3.6.1.4.1.99999.1, name: t}
        filter: {index: 2, column: {OID: 1.3.6.1.4.1.99999.1.1.2, name: c}, equals: [1]}
        symbols: [{OID: 1.3.6.1.4.1.99999.1.1.3, name: v, field: watts}]
     """, "exactly one of column or index"),
    ("""\
      - entity: {index: [1]}
        symbol: {OID: 1.3.6.1.4.1.99999.2.0, name: v, field: watts}
     """, "a scalar has none"),
    ("""\
      - table: {OID: 1.3.6.1.4.1.99999.1, name: t}
        entity: {index: [0]}
        symbols: [{OID: 1.3.6.1.4.1.99999.1.1.3, name: v, field: watts}]
     """, "greater than or equal to 1"),
])
def test_new_keys_are_checked_at_load(tmp_path, metric, message):
    (tmp_path / "bad.yaml").write_text("metrics:\n" + textwrap.indent(textwrap.dedent(metric), "  "))
    with pytest.raises(InputError) as err:
        load_profiles([tmp_path])
    assert message in str(err.value)
