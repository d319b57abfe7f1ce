"""Config: the issue's example accepted as written; bad input named by file, line, field."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from greenwatch.core.config import parse_duration, split_address
from greenwatch.config import load_config
from greenwatch.core.yamlfile import InputError

EXAMPLE = """\
influxdb:
  url: http://127.0.0.1:8086
  database: greenwatch
defaults:
  interval: 60s
  timeout: 2s
sites:
  - name: dc-north
    devices:
      - name: pdu-a1
        address: 127.0.0.1:1161
        snmp: {version: 2c, community: pdu-a1}
        tags: {room: hall-1, rack: A1}
      - name: ups-1
        address: 127.0.0.1:1161
        snmp: {version: 2c, community: ups-1}
        profile: ups-mib
"""


def write(tmp_path: Path, text: str, name: str = "greenwatch.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "greenwatch.cli", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_issue_example_is_accepted_as_written(tmp_path):
    config = load_config(write(tmp_path, EXAMPLE))
    (site,) = config.sites
    pdu, ups = site.devices
    assert config.influxdb.url == "http://127.0.0.1:8086" and config.influxdb.database == "greenwatch"
    assert config.defaults.interval == 60.0 and config.defaults.timeout == 2.0
    assert pdu.host_port() == ("127.0.0.1", 1161)
    assert pdu.snmp.version == "2c" and pdu.snmp.community.get_secret_value() == "pdu-a1"
    assert pdu.tags == {"room": "hall-1", "rack": "A1"} and pdu.profile is None
    assert ups.profile == "ups-mib"
    # The spool sits beside the config file, named after it, unless told otherwise.
    assert config.spool.path == tmp_path.resolve() / "greenwatch.spool.db"


def test_check_accepts_the_example(tmp_path):
    result = cli("check", "--config", str(write(tmp_path, EXAMPLE)))
    assert result.returncode == 0, result.stderr
    assert "valid: 1 sites, 2 devices" in result.stdout


def test_secrets_come_from_env_or_file_and_never_print(tmp_path, monkeypatch):
    (tmp_path / "priv.key").write_text("priv-from-file-123\n")
    monkeypatch.setenv("GW_TEST_AUTH", "auth-from-env-456")
    monkeypatch.setenv("GW_TEST_COMMUNITY", "s3cret-community")
    config = load_config(write(tmp_path, """\
        sites:
          - name: s
            devices:
              - name: a
                address: 10.0.0.1
                snmp: {version: 2c, community: "${GW_TEST_COMMUNITY}"}
              - name: b
                address: 10.0.0.2
                snmp:
                  version: 3
                  user: gw
                  auth_protocol: SHA-256
                  auth_key: {env: GW_TEST_AUTH}
                  priv_protocol: AES
                  priv_key: {file: priv.key}
        """))
    a, b = config.sites[0].devices
    assert a.snmp.community.get_secret_value() == "s3cret-community"
    assert b.snmp.auth_key.get_secret_value() == "auth-from-env-456"
    assert b.snmp.priv_key.get_secret_value() == "priv-from-file-123"
    assert b.snmp.auth_protocol == "SHA256" and b.snmp.security_level == "authPriv"
    shown = repr(config) + str(config.model_dump())
    for secret in ("s3cret-community", "auth-from-env-456", "priv-from-file-123"):
        assert secret not in shown


BAD_CASES = {
    "wrong type": (
        """\
        defaults:
          interval: 60s
          retries: lots
        """,
        ":3: defaults.retries: ",
    ),
    "bad duration": (
        """\
        defaults:
          timeout: soon
        """,
        ":2: defaults.timeout: expected a duration",
    ),
    "missing secret": (
        """\
        sites:
          - name: s
            devices:
              - name: a
                address: 10.0.0.1
                snmp: {version: 2c, community: "${GW_SURELY_UNSET_VAR}"}
        """,
        ":6: sites[0].devices[0].snmp.community: environment variable GW_SURELY_UNSET_VAR is not set",
    ),
    "misspelt key": (
        """\
        sites:
          - name: s
            devices:
              - name: a
                adress: 10.0.0.1
                snmp: {version: 2c, community: x}
        """,
        ":5: sites[0].devices[0].adress: unknown key",
    ),
    "unknown profile": (
        """\
        sites:
          - name: s
            devices:
              - name: a
                address: 10.0.0.1
                snmp: {version: 2c, community: x}
                profile: no-such-profile
        """,
        ":7: sites[0].devices[0].profile: unknown profile 'no-such-profile'",
    ),
    "v3 without user": (
        """\
        sites:
          - name: s
            devices:
              - name: a
                address: 10.0.0.1
                snmp: {version: 3}
        """,
        ":6: sites[0].devices[0].snmp: SNMP version 3 needs a user",
    ),
    "bad port": (
        """\
        sites:
          - name: s
            devices:
              - name: a
                address: 10.0.0.1:70000
                snmp: {version: 2c, community: x}
        """,
        ":5: sites[0].devices[0].address: port must be 1-65535",
    ),
    "unknown kind": (
        """\
        sites:
          - name: s
            devices:
              - name: a
                address: 10.0.0.1
                snmp: {version: 2c, community: x}
                kind: pud
        """,
        ":7: sites[0].devices[0].kind: unknown kind 'pud'",
    ),
    "reserved tag": (
        """\
        sites:
          - name: s
            tags: {site: other}
        """,
        ":3: sites[0].tags: tag names ['site'] are reserved",
    ),
    "not yaml": ("sites: [\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_config_names_the_place_and_exits_2(tmp_path, case):
    text, expected = BAD_CASES[case]
    path = write(tmp_path, text)
    # Every command refuses a bad config the same way; one case shows it for all three.
    commands = ("check", "run", "poll") if case == "wrong type" else ("check",)
    for command in commands:
        args = [command, "--config", str(path)] + (["--once"] if command == "poll" else [])
        result = cli(*args)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert f"{path}" in result.stderr and expected in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    # Nothing was started: no spool was created beside the config.
    assert not list(tmp_path.glob("*.db"))


def test_malformed_oid_in_a_user_profile_exits_2(tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "my-meter.yaml").write_text(textwrap.dedent("""\
        sysobjectid: 1.3.6.1.4.1.99999.1
        kind: meter
        metrics:
          - symbol: {OID: 1.3.6.1.4.1.99999.2.x.1, name: meterPower, field: watts, unit: W}
        """))
    path = write(tmp_path, """\
        collector:
          profile_dirs: [profiles]
        sites: []
        """)
    result = cli("check", "--config", str(path))
    assert result.returncode == 2
    assert f"{profiles / 'my-meter.yaml'}:4: metrics[0].symbol.OID: malformed OID" in result.stderr


def test_durations_and_addresses():
    assert parse_duration("500ms") == 0.5 and parse_duration("5m") == 300 and parse_duration(2) == 2
    assert split_address("[::1]:1161", 161) == ("::1", 1161)
    assert split_address("pdu.example", 161) == ("pdu.example", 161)
    with pytest.raises(ValueError):
        parse_duration("0s")
    with pytest.raises(InputError):
        load_config(Path("/nonexistent/greenwatch.yaml"))
