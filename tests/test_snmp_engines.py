"""The SNMP engines against real agents: gufo-snmp (fast) and pysnmp (reference) must
read the same agent into the same typed values, fail the same way, and say why.

snmpsim serves real devices' walks (snmpsim's own linux-full-walk, the project's
apc-rpdu2 recording): static values, so the two engines' dicts compare equal. net-snmp's
snmpd is a real C agent with live values, SNMPv3 users and a real end of MIB.

The gufo engine learns each value's SMI type from pysnmp the first time it sees a
column or OID (gufo-snmp returns bare ints); the tests read every agent twice with it
and check that the second, warm read asks pysnmp nothing and is still identical.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
import snmpsim as snmpsim_package

from collector.snmp.engine import (
    COUNTER32,
    COUNTER64,
    GAUGE,
    INTEGER,
    IPADDRESS,
    OCTETS,
    OID,
    OPAQUE,
    TIMETICKS,
    SnmpError,
    Target,
    Var,
)
from collector.snmp.engines import ENGINE_NAMES, available_engines, make_engine
from collector.snmp.gufo_engine import TIMEOUT_MESSAGE, GufoEngine
from collector.snmp.pysnmp_engine import PysnmpEngine

RECORDINGS = Path(__file__).parent / "recordings"
SHIPPED = Path(snmpsim_package.__file__).parent / "data" / "recorded"
COMMUNITIES = {
    "linux-full-walk": SHIPPED / "linux-full-walk.snmprec",
    "apc-rpdu2": RECORDINGS / "apc-rpdu2.snmprec",
}

SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME = (f"1.3.6.1.2.1.1.{i}.0" for i in (1, 2, 3, 5))
IF_TABLE_COLUMNS = [f"1.3.6.1.2.1.2.2.1.{i}" for i in range(1, 23)]
# Columns of linux-full-walk with one SMI type each, between them every type it has.
LINUX_COLUMNS = IF_TABLE_COLUMNS + [
    "1.3.6.1.2.1.4.20.1.1",  # ipAdEntAddr: IpAddress
    "1.3.6.1.2.1.4.31.1.1.4",  # ipSystemStatsHCInReceives: Counter64
    "1.3.6.1.2.1.25.2.3.1.2",  # hrStorageType: OBJECT IDENTIFIER
    "1.3.6.1.4.1.2021.10.1.6",  # laLoadFloat: Opaque
    "1.3.6.1.2.1.1.9.1.4",  # sysORUpTime: TimeTicks
]
MISSING = "1.3.6.1.2.1.1.99.0"


# --------------------------------------------------------------------------- helpers


def target(agent, community: str, version: str = "2c", **kw) -> Target:
    host, port = hostport(agent)
    return Target(host, port, version, community=community, **{"timeout": 2.0, "retries": 1, **kw})


def hostport(agent) -> tuple[str, int]:
    address = str(agent.address)
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    return host.strip("[]"), int(agent.port)


def snmprec_types(path: Path) -> dict[str, str]:
    """{oid: SMI type} of a recording, from its type tags."""
    tags = {"2": INTEGER, "4": OCTETS, "6": OID, "64": IPADDRESS, "65": COUNTER32, "66": GAUGE,
            "67": TIMETICKS, "68": OPAQUE, "70": COUNTER64}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            oid, tag, _ = line.split("|", 2)
            out[oid] = tags[tag.split(":")[0].rstrip("xe")]
    return out


def types_of(walked: dict[str, dict[str, Var]]) -> dict[str, str]:
    return {f"{col}.{suffix}": var.type for col, rows in walked.items() for suffix, var in rows.items()}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def read_both_ways(make_read):
    """pysnmp's answer, gufo's cold answer (typed via pysnmp) and gufo's warm answer
    (gufo alone), plus how often the warm read asked pysnmp."""
    reference, gufo = PysnmpEngine(), GufoEngine()
    try:
        expected = await make_read(reference)
        cold = await make_read(gufo)
        calls = gufo.reference_calls
        warm = await make_read(gufo)
        return expected, cold, warm, gufo.reference_calls - calls
    finally:
        await reference.close()
        await gufo.close()


@pytest.fixture(scope="module")
def agent(snmpsim):
    agent = snmpsim.start(COMMUNITIES)
    yield agent
    agent.stop()


# --------------------------------------------------------------------------- registry


def test_gufo_is_registered_first_and_auto_prefers_it():
    assert ENGINE_NAMES == ("gufo", "pysnmp")
    assert available_engines() == ["gufo", "pysnmp"]
    assert make_engine("auto").name == "gufo"
    assert make_engine("pysnmp").name == "pysnmp"
    with pytest.raises(ValueError, match="unknown or unavailable SNMP engine 'nope'"):
        make_engine("nope")


# --------------------------------------------------------------------------- same readings


@pytest.mark.parametrize("version", ["2c", "1"])
async def test_same_columns_from_a_real_linux_walk(agent, version):
    t = target(agent, "linux-full-walk", version)
    columns = LINUX_COLUMNS if version == "2c" else [c for c in LINUX_COLUMNS if c != "1.3.6.1.2.1.4.31.1.1.4"]
    expected, cold, warm, warm_calls = await read_both_ways(lambda e: e.walk(t, columns))
    assert cold == expected
    assert warm == expected
    assert warm_calls == 0
    # the rows and types are the recording's own
    recorded = snmprec_types(COMMUNITIES["linux-full-walk"])
    got = types_of(warm)
    assert got == {oid: smi for oid, smi in recorded.items() if any(oid.startswith(c + ".") for c in columns)}
    kinds = set(got.values())
    assert {COUNTER32, GAUGE, INTEGER, OCTETS, OID, IPADDRESS, TIMETICKS, OPAQUE} <= kinds
    assert (COUNTER64 in kinds) == (version == "2c")  # SNMPv1 has no Counter64
    assert warm["1.3.6.1.2.1.2.2.1.10"]["2"] == Var(COUNTER32, 2692239107)  # ifInOctets.eth0
    assert warm["1.3.6.1.2.1.2.2.1.5"]["1"] == Var(GAUGE, 10000000)  # ifSpeed.lo
    assert warm["1.3.6.1.2.1.2.2.1.2"]["1"] == Var(OCTETS, b"lo")


@pytest.mark.parametrize("community", sorted(COMMUNITIES))
async def test_same_full_tree_walk(agent, community):
    """The whole recording as one subtree: mixed types, every row typed as recorded."""
    t = target(agent, community)
    expected, cold, warm, warm_calls = await read_both_ways(lambda e: e.walk(t, ["1.3.6.1"]))
    assert cold == expected
    assert warm == expected
    assert warm_calls == 0
    assert types_of(warm) == snmprec_types(COMMUNITIES[community])


@pytest.mark.parametrize("version", ["2c", "1"])
async def test_same_get_and_missing_oids_are_none(agent, version):
    t = target(agent, "linux-full-walk", version)
    oids = [SYS_DESCR, SYS_OBJECT_ID, MISSING, SYS_UPTIME, "1.3.6.1.2.1.2.2.1.10.2", "1.3.6.1.2.1.2.2.1.5.1",
            "1.3.6.1.2.1.4.20.1.1.127.0.0.1", "1.3.6.1.4.1.2021.10.1.6.1", "1.3.6.1.2.1.2.2.1.10.999"]
    expected, cold, warm, warm_calls = await read_both_ways(lambda e: e.get(t, oids))
    assert cold == expected and warm == expected and warm_calls == 0
    assert list(warm) == oids
    assert warm[MISSING] is None and warm["1.3.6.1.2.1.2.2.1.10.999"] is None
    assert warm[SYS_UPTIME] == Var(TIMETICKS, 233425120)
    assert warm[SYS_OBJECT_ID] == Var(OID, "1.3.6.1.4.1.8072.3.2.10")
    assert warm["1.3.6.1.2.1.2.2.1.10.2"] == Var(COUNTER32, 2692239107)
    assert warm["1.3.6.1.2.1.4.20.1.1.127.0.0.1"] == Var(IPADDRESS, "127.0.0.1")
    assert warm["1.3.6.1.4.1.2021.10.1.6.1"].type == OPAQUE


async def test_same_readings_of_the_pdu_recording(agent):
    recorded = snmprec_types(COMMUNITIES["apc-rpdu2"])
    t = target(agent, "apc-rpdu2")
    table = sorted({oid.rsplit(".", 1)[0] for oid in recorded if oid.startswith("1.3.6.1.4.1.318.1.1.26")})
    expected, cold, warm, warm_calls = await read_both_ways(lambda e: e.walk(t, table))
    assert cold == expected and warm == expected and warm_calls == 0
    assert sum(map(len, warm.values())) == len([o for o in recorded if o.startswith("1.3.6.1.4.1.318.1.1.26")])
    scalars = [oid for oid in recorded if oid.startswith("1.3.6.1.2.1.1.")] + [MISSING]
    expected, cold, warm, warm_calls = await read_both_ways(lambda e: e.get(t, scalars))
    assert cold == expected and warm == expected and warm_calls == 0
    assert warm[SYS_NAME] == Var(OCTETS, b"pdu-a1") and warm[MISSING] is None


async def test_walks_end_at_the_column_and_at_the_end_of_the_mib(agent, snmp_engine):
    t = target(agent, "linux-full-walk")
    recorded = snmprec_types(COMMUNITIES["linux-full-walk"])
    last = max(recorded, key=lambda oid: tuple(map(int, oid.split("."))))
    last_column = last.rsplit(".", 1)[0]
    for _ in range(2):
        got = await snmp_engine.walk(t, ["1.3.6.1.2.1.2.2.1.1", last_column, "1.3.6.1.9", "1.3.6.1.2.1.2.2.1.99"])
        assert got["1.3.6.1.2.1.2.2.1.1"] == {"1": Var(INTEGER, 1), "2": Var(INTEGER, 2)}  # not ifDescr
        assert last[len(last_column) + 1 :] in got[last_column]  # endOfMibView after it
        assert got["1.3.6.1.9"] == {} and got["1.3.6.1.2.1.2.2.1.99"] == {}


async def test_v1_walk_ends_at_the_end_of_the_mib(agent, snmp_engine):
    """SNMPv1 has no endOfMibView: the agent's noSuchName to GETNEXT ends the walk."""
    t = target(agent, "linux-full-walk", "1")
    recorded = snmprec_types(COMMUNITIES["linux-full-walk"])
    last = max(recorded, key=lambda oid: tuple(map(int, oid.split("."))))
    subtree = ".".join(last.split(".")[:8])
    for _ in range(2):
        got = await snmp_engine.walk(t, [subtree, "1.3.6.1.2.1.2.2.1.2"])
        assert got[subtree] and last[len(subtree) + 1 :] in got[subtree]
        assert got["1.3.6.1.2.1.2.2.1.2"] == {"1": Var(OCTETS, b"lo"), "2": Var(OCTETS, b"eth0")}


async def test_empty_requests(agent, snmp_engine):
    t = target(agent, "linux-full-walk")
    assert await snmp_engine.get(t, []) == {}
    assert await snmp_engine.walk(t, []) == {}


# --------------------------------------------------------------------------- net-snmp's snmpd


def snmpd_target(snmpd, version: str = "2c", **kw) -> Target:
    host, port = hostport(snmpd)
    if version != "3":
        kw.setdefault("community", snmpd.community)
    return Target(host, port, version, **{"timeout": 2.0, "retries": 1, **kw})


async def test_same_readings_from_snmpd(snmpd):
    """Live values move between reads, so keys and types must match exactly and the
    values that do not move (system group strings, interface names) too."""
    t = snmpd_target(snmpd)
    columns = ["1.3.6.1.2.1.1", *IF_TABLE_COLUMNS, "1.3.6.1.2.1.25.2.3.1"]
    expected, cold, warm, warm_calls = await read_both_ways(lambda e: e.walk(t, columns))
    assert warm_calls == 0
    assert types_of(cold) == types_of(expected) == types_of(warm)
    assert warm["1.3.6.1.2.1.2.2.1.2"] == expected["1.3.6.1.2.1.2.2.1.2"]  # ifDescr
    assert warm["1.3.6.1.2.1.1"]["1.0"] == expected["1.3.6.1.2.1.1"]["1.0"]  # sysDescr
    assert {COUNTER32, GAUGE, INTEGER, OCTETS, OID, TIMETICKS} <= set(types_of(warm).values())


V3_USERS = [("SHA", "AES"), ("SHA256", "AES")]


@pytest.mark.parametrize("auth,priv", V3_USERS, ids=["sha-aes", "sha256-aes"])
async def test_v3_auth_priv(snmpd, snmp_engine, auth, priv):
    user = snmpd.v3_user(auth, priv)
    t = snmpd_target(snmpd, "3", user=user.name, auth_protocol=auth, auth_key=user.auth_key,
                     priv_protocol=priv, priv_key=user.priv_key)
    plain = snmpd_target(snmpd)
    for round in range(2):
        if round == 1:
            reference_calls = getattr(snmp_engine, "reference_calls", 0)
        got = await snmp_engine.get(t, [SYS_DESCR, SYS_UPTIME, MISSING])
        assert got[SYS_DESCR] == (await snmp_engine.get(plain, [SYS_DESCR]))[SYS_DESCR]
        assert got[SYS_UPTIME].type == TIMETICKS and got[MISSING] is None
        walked = await snmp_engine.walk(t, ["1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.10"])
        assert walked["1.3.6.1.2.1.2.2.1.2"] == (await snmp_engine.walk(plain, ["1.3.6.1.2.1.2.2.1.2"]))[
            "1.3.6.1.2.1.2.2.1.2"
        ]
        in_octets = walked["1.3.6.1.2.1.2.2.1.10"]
        assert in_octets and {v.type for v in in_octets.values()} == {COUNTER32}
    # the second round was gufo's own SNMPv3 (its USM, keys and AES), pysnmp not asked
    assert getattr(snmp_engine, "reference_calls", 0) == reference_calls


async def test_v3_wrong_auth_key_is_named_quickly(snmpd, snmp_engine):
    user = snmpd.v3_user("SHA", "AES")
    wrong = "not-the-auth-key-1234"
    t = snmpd_target(snmpd, "3", user=user.name, auth_protocol="SHA", auth_key=wrong,
                     priv_protocol="AES", priv_key=user.priv_key, timeout=2.0, retries=1)
    started = time.monotonic()
    with pytest.raises(SnmpError) as err:
        await snmp_engine.get(t, [SYS_DESCR])
    assert time.monotonic() - started < 2.0  # a Report comes back at once: no timeout
    message = str(err.value)
    assert "wrong auth key" in message.lower(), message
    assert wrong not in message and user.priv_key not in message


async def test_v3_unknown_user_is_an_error(snmpd, snmp_engine):
    user = snmpd.v3_user("SHA", "AES")
    t = snmpd_target(snmpd, "3", user="nobody-here", auth_protocol="SHA", auth_key=user.auth_key,
                     priv_protocol="AES", priv_key=user.priv_key)
    with pytest.raises(SnmpError, match="(?i)unknown"):
        await snmp_engine.get(t, [SYS_DESCR])


async def test_gufo_names_the_v3_failure(snmpd):
    """gufo-snmp reports every Report PDU as "authentication failed"; the engine says which."""
    user = snmpd.v3_user("SHA", "AES")
    engine = GufoEngine()
    try:
        base = dict(user=user.name, auth_protocol="SHA", auth_key=user.auth_key, priv_protocol="AES",
                    priv_key=user.priv_key)
        cases = [
            ({"auth_key": "wrong-auth-key-xyz"}, "SNMPv3 authentication failed: wrong auth key or protocol"),
            ({"user": "nobody-here"}, "SNMPv3 unknown user name"),
            ({"priv_protocol": None, "priv_key": None}, "SNMPv3 security level not supported"),
        ]
        for change, message in cases:
            with pytest.raises(SnmpError, match=message):
                await engine.get(snmpd_target(snmpd, "3", **{**base, **change}), [SYS_DESCR])
        with pytest.raises(SnmpError, match="context 'ctx' is not supported by the gufo SNMP engine"):
            await engine.get(snmpd_target(snmpd, "3", **base, context="ctx"), [SYS_DESCR])
        # and the right keys still work after all that
        assert (await engine.get(snmpd_target(snmpd, "3", **base), [SYS_DESCR]))[SYS_DESCR].type == OCTETS
    finally:
        await engine.close()


# --------------------------------------------------------------------------- failures


async def test_dead_port_is_a_timeout_error_quickly(snmp_engine):
    t = Target("127.0.0.1", free_udp_port(), "2c", community="public", timeout=0.5, retries=1)
    started = time.monotonic()
    with pytest.raises(SnmpError) as err:
        await snmp_engine.get(t, [SYS_DESCR])
    assert str(err.value) == TIMEOUT_MESSAGE
    # two tries of 0.5 s at most (gufo hears the port's ICMP refusal at once), plus
    # pysnmp's timer granularity and a loaded machine
    assert time.monotonic() - started < 0.5 * 2 + 1.5
    with pytest.raises(SnmpError, match="^timeout: no SNMP response"):
        await snmp_engine.walk(t, ["1.3.6.1.2.1.2.2.1.2"])


async def test_wrong_community_is_a_timeout(agent, snmp_engine):
    t = target(agent, "no-such-community", timeout=0.3, retries=0)
    with pytest.raises(SnmpError) as err:
        await snmp_engine.get(t, [SYS_DESCR])
    assert str(err.value) == TIMEOUT_MESSAGE


async def test_unresolvable_host_is_named(snmp_engine):
    t = Target("no-such-host.invalid", 161, "2c", community="public", timeout=0.3, retries=0)
    with pytest.raises(SnmpError, match="cannot reach no-such-host.invalid:161"):
        await snmp_engine.get(t, [SYS_DESCR])


# --------------------------------------------------------------------------- gufo sessions


async def test_gufo_keeps_one_session_per_agent_and_bounds_them(agent):
    engine = GufoEngine(max_sessions=2)
    try:
        a, b = target(agent, "linux-full-walk"), target(agent, "apc-rpdu2")
        await engine.get(a, [SYS_NAME])
        first = next(iter(engine._sessions.values())).session
        for _ in range(3):
            await engine.get(a, [SYS_NAME])
            await engine.walk(a, ["1.3.6.1.2.1.2.2.1.2"])
        assert len(engine._sessions) == 1 and next(iter(engine._sessions.values())).session is first
        await engine.get(b, [SYS_NAME])
        await engine.get(target(agent, "linux-full-walk", "1"), [SYS_NAME])
        assert len(engine._sessions) == 2  # the least recently used one went
        assert (await engine.get(a, [SYS_NAME]))[SYS_NAME] == Var(OCTETS, b"tt")
    finally:
        await engine.close()
    assert not engine._sessions


async def test_gufo_refuses_what_it_cannot_send(agent):
    engine = GufoEngine()
    try:
        with pytest.raises(SnmpError, match="not a numeric OID: 'sysName.0'"):
            await engine.get(target(agent, "linux-full-walk"), ["sysName.0"])
        got = await engine.get(target(agent, "linux-full-walk"), ["." + SYS_NAME])
        assert got == {SYS_NAME: Var(OCTETS, b"tt")}
    finally:
        await engine.close()


async def test_gufo_types_rows_it_has_not_seen_by_get(agent):
    """New rows in a column of mixed types (or a value of a kind the column never had)
    are typed with one pysnmp GET per 24 OIDs, the values still gufo's."""
    t = target(agent, "linux-full-walk")
    columns = ["1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.4.20.1.1"]  # ifEntry: every ifTable column
    reference, engine = PysnmpEngine(), GufoEngine()
    try:
        expected = await reference.walk(t, columns)
        assert await engine.walk(t, columns) == expected
        (types,) = engine._types.values()
        types.columns.clear()
        types.oids.clear()  # as if every row were new
        calls = engine.reference_calls
        assert await engine.walk(t, columns) == expected
        rows = sum(map(len, expected.values()))
        assert engine.reference_calls - calls == -(-rows // 24)
        calls = engine.reference_calls
        assert await engine.walk(t, columns) == expected
        assert engine.reference_calls == calls
    finally:
        await reference.close()
        await engine.close()


async def test_concurrent_reads_of_one_agent_do_not_mix(agent, snmp_engine):
    """gufo matches a reply to the last request of its session: the engine must not
    interleave requests on one agent's session."""
    t = target(agent, "linux-full-walk")
    u = target(agent, "apc-rpdu2")
    expected = await asyncio.gather(snmp_engine.get(t, [SYS_NAME]), snmp_engine.walk(t, IF_TABLE_COLUMNS),
                                    snmp_engine.get(u, [SYS_NAME]))
    calls = []
    for _ in range(10):
        calls += [snmp_engine.get(t, [SYS_NAME]), snmp_engine.walk(t, IF_TABLE_COLUMNS), snmp_engine.get(u, [SYS_NAME])]
    got = await asyncio.gather(*calls)
    assert got == list(expected) * 10
    assert expected[0][SYS_NAME] == Var(OCTETS, b"tt") and expected[2][SYS_NAME] == Var(OCTETS, b"pdu-a1")
