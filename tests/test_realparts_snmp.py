"""The SNMP real parts work: snmpsim serves recordings (numeric variation included) and
net-snmp's snmpd answers v2c and every SNMPv3 user, refusing wrong keys. Checked with
net-snmp's own command line tools, so a fault here is the fixture's, not an engine's."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from realparts.ports import free_tcp_port, free_udp_port
from realparts.snmp import MAX_DATA_FILES, SNMPD_USERS, SnmpSim, require_executable

SYS_DESCR, SYS_OBJECT_ID, SYS_NAME = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.5.0"
GAUGE = "1.3.6.1.4.1.99999.1.1.0"
COUNTER = "1.3.6.1.4.1.99999.1.2.0"

PDU = f"""\
{SYS_DESCR}|4|greenwatch test PDU
{SYS_OBJECT_ID}|6|1.3.6.1.4.1.318.1.3.4.5
1.3.6.1.2.1.1.3.0|67|12345
{SYS_NAME}|4|pdu-test-1
{GAUGE}|66:numeric|rate=1000,min=0
{COUNTER}|65:numeric|cumulative=1,offset=5,rate=1,wrap=1
"""
UPS = f"""\
{SYS_DESCR}|4|greenwatch test UPS
{SYS_OBJECT_ID}|6|1.3.6.1.4.1.534.1
{SYS_NAME}|4|ups-test-1
"""


def snmp(tool: str, *args: str, timeout: float = 1.0, retries: int = 1) -> subprocess.CompletedProcess:
    """Run a net-snmp tool with numeric OIDs, no MIBs and a short timeout."""
    exe = require_executable(tool, "install Debian's net-snmp tools: apt-get install snmp (.ci/run does)")
    command = [exe, "-m", "", "-On", "-t", str(timeout), "-r", str(retries), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def value(tool_result: subprocess.CompletedProcess) -> str:
    assert tool_result.returncode == 0, tool_result.stderr
    return tool_result.stdout.strip()


@pytest.fixture(scope="module")
def agent(snmpsim, tmp_path_factory):
    recordings = tmp_path_factory.mktemp("recordings")
    (recordings / "pdu.snmprec").write_text(PDU)
    (recordings / "ups.snmprec").write_text(UPS)
    agent = snmpsim.start({"pdu-test": recordings / "pdu.snmprec", "ups-test": recordings / "ups.snmprec"})
    yield agent
    agent.stop()


# --------------------------------------------------------------------------- snmpsim


def test_snmpsim_serves_each_recording_under_its_community(agent):
    assert agent.address == f"127.0.0.1:{agent.port}"
    assert sorted(p.name for p in agent.data_dir.iterdir()) == ["pdu-test.snmprec", "ups-test.snmprec"]
    assert agent.communities == ("pdu-test", "ups-test")
    got = value(snmp("snmpget", "-v2c", "-c", "pdu-test", "-Oqv", agent.address, SYS_NAME, SYS_OBJECT_ID))
    assert got.splitlines() == ['"pdu-test-1"', ".1.3.6.1.4.1.318.1.3.4.5"]
    got = value(snmp("snmpget", "-v1", "-c", "ups-test", "-Oqv", agent.address, SYS_NAME))
    assert got == '"ups-test-1"'


def test_snmpsim_numeric_gauge_and_counter_move(agent):
    def read() -> tuple[int, int]:
        out = value(snmp("snmpget", "-v2c", "-c", "pdu-test", "-Oqv", agent.address, GAUGE, COUNTER))
        gauge, counter = out.splitlines()
        return int(gauge), int(counter)

    first = read()
    time.sleep(0.3)
    second = read()
    assert second[0] > first[0]  # 1000 per second since snmpsim started
    assert second[1] > first[1]  # cumulative: +5 per second


def test_snmpsim_bulkwalk_is_the_recording_in_order(agent):
    out = value(snmp("snmpbulkwalk", "-v2c", "-c", "pdu-test", "-Oq", agent.address, "1.3.6.1.2.1.1"))
    assert out.splitlines() == [
        f'.{SYS_DESCR} "greenwatch test PDU"',
        f".{SYS_OBJECT_ID} .1.3.6.1.4.1.318.1.3.4.5",
        ".1.3.6.1.2.1.1.3.0 0:0:02:03.45",
        f'.{SYS_NAME} "pdu-test-1"',
    ]


def test_snmpsim_bulkwalk_to_the_end_of_the_mib(agent):
    """At the end of the MIB snmpsim fills the GETBULK reply with endOfMibView under the
    last OID (as RFC 3416 says) and snmpbulkwalk prints those too; snmpd stops instead."""
    out = value(snmp("snmpbulkwalk", "-v2c", "-c", "ups-test", "-Oq", agent.address, "1.3.6.1.2.1.1"))
    lines = out.splitlines()
    assert lines[:3] == [
        f'.{SYS_DESCR} "greenwatch test UPS"',
        f".{SYS_OBJECT_ID} .1.3.6.1.4.1.534.1",
        f'.{SYS_NAME} "ups-test-1"',
    ]
    assert all(line.startswith(f".{SYS_NAME} No more variables left in this MIB View") for line in lines[3:])


def test_snmpsim_unknown_community_gets_no_answer(agent):
    result = snmp("snmpget", "-v2c", "-c", "no-such-device", agent.address, SYS_NAME, timeout=0.3, retries=0)
    assert result.returncode != 0
    assert "Timeout" in result.stderr


def test_snmpsim_loads_only_our_variation_modules(agent):
    log = agent.log_path.read_text()
    assert "redis" not in log and "sql" not in log and "ERROR" not in log, log
    assert agent.pid and agent.startup_seconds > 0


def test_snmpsim_refuses_bad_recordings(snmpsim, tmp_path):
    recording = tmp_path / "x.snmprec"
    recording.write_text(UPS)
    with pytest.raises(ValueError, match="at most 30"):
        snmpsim.start({f"dev-{i}": recording for i in range(MAX_DATA_FILES + 1)})
    with pytest.raises(ValueError, match="community 'a/b'"):
        snmpsim.start({"a/b": recording})
    with pytest.raises(FileNotFoundError, match="missing.snmprec"):
        snmpsim.start({"dev": tmp_path / "missing.snmprec"})


def test_snmpsim_start_many_overlaps_startups(snmpsim, tmp_path):
    recording = tmp_path / "ups.snmprec"
    recording.write_text(UPS)
    agents = snmpsim.start_many([{"a": recording}, {"b": recording}])
    try:
        assert len({a.port for a in agents}) == 2
        for agent, community in zip(agents, "ab"):
            got = value(snmp("snmpget", "-v2c", "-c", community, "-Oqv", agent.address, SYS_NAME))
            assert got == '"ups-test-1"'
    finally:
        for agent in agents:
            agent.stop()
    assert all(agent.process.poll() is not None for agent in agents)


# --------------------------------------------------------------------------- snmpd


def test_snmpd_answers_v2c_with_the_host_mibs(snmpd):
    assert snmpd.address == f"127.0.0.1:{snmpd.port}"
    got = value(snmp("snmpget", "-v2c", "-c", snmpd.community, "-Oqv", snmpd.address, SYS_OBJECT_ID))
    assert got == ".1.3.6.1.4.1.8072.3.2.10"  # net-snmp on Linux
    # the whole tree is visible: interfaces and HOST-RESOURCES-MIB storage
    walked = value(snmp("snmpbulkwalk", "-v2c", "-c", snmpd.community, "-Oq", snmpd.address, "1.3.6.1.2.1.2.2.1.2"))
    assert walked.splitlines()
    storage = value(snmp("snmpbulkwalk", "-v2c", "-c", snmpd.community, "-Oq", snmpd.address, "1.3.6.1.2.1.25.2.3.1.3"))
    assert storage.splitlines()


@pytest.mark.parametrize("name", sorted(SNMPD_USERS))
def test_snmpd_answers_each_v3_user(snmpd, name):
    user = snmpd.users[name]
    assert user is SNMPD_USERS[name] and user.name == name
    assert len(user.auth_key) >= 8 and (user.priv_key is None or len(user.priv_key) >= 8)
    plain = value(snmp("snmpget", "-v2c", "-c", snmpd.community, "-Oqv", snmpd.address, SYS_NAME))
    got = value(snmp("snmpget", *snmpd.v3_args(name), "-Oqv", snmpd.address, SYS_NAME))
    assert got == plain


def test_snmpd_v3_users_by_protocol(snmpd):
    assert snmpd.v3_user("SHA", "AES").name == "gw-sha-aes"
    assert snmpd.v3_user("SHA-256", "AES128").name == "gw-sha256-aes"
    assert snmpd.v3_user("sha").name == "gw-authnopriv"
    with pytest.raises(KeyError, match="MD5"):
        snmpd.v3_user("MD5", "DES")


def test_snmpd_refuses_a_wrong_auth_key(snmpd):
    args = snmpd.v3_args("gw-sha256-aes")
    args[args.index("-A") + 1] = "not-the-auth-key"
    result = snmp("snmpget", *args, snmpd.address, SYS_NAME, timeout=0.5, retries=0)
    assert result.returncode != 0
    assert "Authentication failure" in result.stderr


def test_snmpd_refuses_a_wrong_priv_key(snmpd):
    args = snmpd.v3_args("gw-sha-aes")
    args[args.index("-X") + 1] = "not-the-priv-key"
    result = snmp("snmpget", *args, snmpd.address, SYS_NAME, timeout=0.5, retries=0)
    assert result.returncode != 0  # snmpd cannot decrypt it and drops it
    assert not result.stdout


def test_snmpd_refuses_less_security_than_the_user_needs(snmpd):
    user = snmpd.users["gw-sha-aes"]
    args = ["-v3", "-l", "authNoPriv", "-u", user.name, "-a", "SHA", "-A", user.auth_key]
    result = snmp("snmpget", *args, snmpd.address, SYS_NAME, timeout=0.5, retries=0)
    assert result.returncode != 0
    assert "authorizationError" in result.stdout + result.stderr


# --------------------------------------------------------------------------- helpers


def test_missing_binary_fails_never_skips():
    with pytest.raises(pytest.fail.Exception, match="no-such-binary-gw not found.*apt-get install it"):
        require_executable("no-such-binary-gw", "apt-get install it")


def test_free_ports_are_distinct_and_bindable():
    import socket

    udp = {free_udp_port() for _ in range(20)}
    tcp = {free_tcp_port() for _ in range(20)}
    assert len(udp) == 20 and len(tcp) == 20
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", udp.pop()))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", tcp.pop()))


def test_snmpsim_manager_is_importable_for_scripts(tmp_path):
    """The manager also works outside the fixture (bench/ may use it)."""
    manager = SnmpSim(tmp_path)
    assert Path(manager.executable).name == "snmpsim-command-responder"
    manager.stop_all()
