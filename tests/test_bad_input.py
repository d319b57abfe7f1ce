"""Issue 9: every bad config or profile is exit 2 with file and line, never a
traceback; `check` refuses exactly what `run` and `poll --once` would; no credential
is echoed; each config has a spool of its own."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from aiohttp import web
from realparts.influx import free_port
from realparts.web import serve

from greenwatch import cli
from greenwatch.core.spool import Spool
from greenwatch.core.yamlfile import MAX_DEPTH, InputError
from greenwatch.service import Service, load, spool_path

DEVICE = """\
sites:
  - name: s
    devices:
      - name: a
        address: 10.0.0.1
        snmp: {version: 2c, community: public}
"""


def write(folder: Path, text: str | bytes, name: str = "greenwatch.yaml") -> Path:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text))
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.err


def refused_by_every_command(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    """check, poll --once and run all exit 2 with the same messages; returns them."""
    outputs = []
    for args in (["check"], ["poll", "--once"], ["run"]):
        code, err = run_cli(capsys, *args, "--config", str(path))
        assert code == cli.EXIT_BAD_INPUT, (args, err)
        assert "Traceback" not in err
        outputs.append(err)
    assert outputs[0] == outputs[1] == outputs[2]
    return outputs[0]


# name -> (config text or bytes, what stderr must say after "file:line: ")
CONFIG_CASES: dict[str, tuple[str | bytes, str]] = {
    "not utf-8": (b"sites:\n  - name: caf\xe9\n", ":2: not UTF-8 text (byte 0xe9)"),
    "interval nan": ("defaults:\n  interval: .nan\n", ":2: defaults.interval: expected a duration"),
    "interval inf": ("defaults:\n  interval: .inf\n", ":2: defaults.interval: a duration must be at most 366 days"),
    "interval huge number": ("defaults:\n  interval: 1.0e+400\n", ":2: defaults.interval: a duration must be at most"),
    "interval huge int": ("defaults:\n  interval: " + "9" * 400 + "\n", ":2: defaults.interval: a duration must be at most"),
    "interval huge text": ("defaults:\n  interval: 99999999999h\n", ":2: defaults.interval: a duration must be at most"),
    "device interval negative": (DEVICE + "        interval: -5s\n",
                                 ":7: sites[0].devices[0].interval: expected a duration"),
    "rules interval inf": ("rules:\n  interval: .inf\n", ":2: rules.interval: a duration must be at most"),
    "spool size zero": ("spool:\n  max_size: 0\n", ":2: spool.max_size: the spool needs room"),
    "spool size negative": ("spool:\n  max_size: -5\n", ":2: spool.max_size: a size cannot be negative"),
    "spool size overflowing": ("spool:\n  max_size: " + "9" * 400 + "GB\n", ":2: spool.max_size: size"),
    "spool path is a folder": ("spool:\n  path: .\n", ":2: spool.path: "),
    "spool path under a file": ("spool:\n  path: greenwatch.yaml/spool.db\n", ":2: spool.path: cannot create"),
    "spool path in /proc": ("spool:\n  path: /proc/greenwatch/spool.db\n", ":2: spool.path: cannot create"),
    "spool path not a spool": ("spool:\n  path: greenwatch.yaml\n", ":2: spool.path: "),
    "influxdb url not http": ("influxdb:\n  url: ftp://db.example:8086\n",
                              ":2: influxdb.url: expected an http:// or https:// URL"),
    "influxdb url bad port": ("influxdb:\n  url: http://db.example:99999\n", ":2: influxdb.url: not a valid URL"),
    "influxdb token and username": ("influxdb:\n  token: t0k\n  username: u\n  password: p\n",
                                    ":2: influxdb: give either token or username/password, not both"),
    "influxdb password alone": ("influxdb:\n  password: p\n", ":2: influxdb: password needs a username"),
    "influxdb empty token": ("influxdb:\n  token: ''\n", ":2: influxdb: token is empty"),
    "influxdb v2 without token": ("influxdb:\n  api: v2\n  org: o\n  bucket: b\n  username: u\n  password: p\n",
                                  ":2: influxdb: api v2 needs token"),
    "influxdb empty username": ("influxdb:\n  username: ''\n  password: p\n", ":2: influxdb.username: "),
    "influxdb empty database": ("influxdb:\n  database: ''\n", ":2: influxdb.database: "),
    "influxdb missing ca_file": ("influxdb:\n  url: https://db.example:8086\n  ca_file: no-such-ca.pem\n",
                                 ":3: influxdb.ca_file: cannot use ca_file"),
    "influxdb ca_file not pem": ("influxdb:\n  url: https://db.example:8086\n  ca_file: greenwatch.yaml\n",
                                 ":3: influxdb.ca_file: cannot use ca_file"),
    "redfish missing ca_file": ("sites:\n  - name: s\n    devices:\n      - name: bmc\n        redfish:\n"
                                "          url: https://10.0.1.7\n          ca_file: /no/such/ca.pem\n",
                                ":7: sites[0].devices[0].redfish.ca_file: cannot use ca_file"),
    "secret file is a device": (DEVICE.replace("community: public", "community: {file: /dev/zero}"),
                                ":6: sites[0].devices[0].snmp.community: secret file /dev/zero is not a regular file"),
    "secret file is a folder": (DEVICE.replace("community: public", "community: {file: .}"),
                                ":6: sites[0].devices[0].snmp.community: secret file"),
    "duplicate key": ("defaults:\n  interval: 60s\n  timeout: 2s\n  interval: 30s\n",
                      ":4: defaults.interval: appears twice in this mapping (first on line 2)"),
    "duplicate device key": (DEVICE + "        address: 10.0.0.2\n",
                             ":7: sites[0].devices[0].address: appears twice in this mapping (first on line 5)"),
    "duplicate top-level key": ("sites: []\nsites: []\n", ":2: sites: appears twice"),
    "alias bomb under tags": (
        "sites:\n  - name: s\n    tags:\n      a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"      {c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")),
        "values; with aliases the file expands to"),
    "alias inside itself": ("sites:\n  - &s {name: s, tags: {x: *s}}\n", ":2: sites[0].tags.x: alias *s is inside its own"),
    "list as a tag value": ("sites:\n  - name: s\n    tags: {room: [a, b]}\n",
                            ":3: sites[0].tags: tag 'room': expected a name and a text value"),
    "empty tag value": ("sites:\n  - name: s\n    tags: {room: }\n", ":3: sites[0].tags: tag 'room'"),
    "bad implicit timestamp": ("sites:\n  - name: 2001-13-45\n", ":2: not valid YAML: not a valid timestamp"),
    "bad explicit int": ("defaults:\n  retries: !!int many\n", ":2: not valid YAML: not a valid int"),
    "control character": ("sites:\n  - name: \"a\x07\"\n", ":2: not valid YAML: character U+0007 is not allowed"),
    "control character after accents": ("sites:\n  - name: éé\n  - name: ééé\x07\n",
                                        ":3: not valid YAML: character U+0007 is not allowed"),
    "unknown tag": ("defaults:\n  retries: !!python/object:os.system 1\n", ":2: not valid YAML: could not determine a constructor"),
    "two documents": ("sites: []\n---\nsites: []\n",
                      ":2: not valid YAML: expected a single document in the stream, but found another document"),
    "empty file": ("", ":1: the file is empty"),
    "only comments": ("# nothing yet\n", ":1: the file is empty"),
    "an empty mapping": ("# nothing yet\n{}\n", ":2: the file is empty"),
    "top level a list": ("- sites\n", ":1: (top level): Input should be a valid dictionary"),
    "deep nesting": ("sites: " + "[" * 200_000 + "]" * 200_000 + "\n", f":1: nested deeper than {MAX_DEPTH} levels"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_is_refused_by_every_command_with_file_and_line(tmp_path, capsys, case):
    text, expected = CONFIG_CASES[case]
    path = write(tmp_path, text)
    err = refused_by_every_command(capsys, path)
    assert f"{path}{expected}" in err or (expected in err and str(path) in err), err
    if not expected.startswith(":"):
        return
    # The file:line form is exact where a line is known.
    assert err.startswith(f"{path}{expected.split(': ')[0]}"), err
    # Nothing was started: no spool beside the config.
    assert not list(tmp_path.glob("*.spool*.db"))


def test_a_deep_file_does_not_crash_the_process(tmp_path):
    """libyaml's C composer recursed until the process died (SIGSEGV); now the depth
    is refused before composing. A real process, to see its exit status."""
    path = write(tmp_path, "sites: " + "[" * 300_000 + "]" * 300_000 + "\n")
    result = subprocess.run([sys.executable, "-m", "greenwatch.cli", "check", "-c", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result
    assert f"{path}:1: nested deeper than {MAX_DEPTH} levels" in result.stderr


def test_nesting_up_to_the_limit_is_read(tmp_path):
    # Deep values are still refused by the model, but as a type error, not as YAML.
    path = write(tmp_path, "sites:\n  - name: s\n    tags: {x: " + "[" * (MAX_DEPTH - 4) + "]" * (MAX_DEPTH - 4) + "}\n")
    with pytest.raises(InputError) as info:
        load(path)
    assert ":3: sites[0].tags: tag 'x'" in str(info.value)


def test_anchors_and_merges_of_ordinary_size_are_fine(tmp_path):
    # A merge's keys overridden by the mapping's own are not duplicates.
    devices = "".join(f"      - {{<<: *dev, name: d{i}, address: 10.0.0.{i}}}\n" for i in range(1, 300))
    path = write(tmp_path, "sites:\n  - name: s\n    devices:\n"
                 "      - &dev {name: d0, address: 10.0.0.250, snmp: {version: 2c, community: c}, tags: {room: r1}}\n"
                 + devices)
    config = load(path).config
    assert len(config.sites[0].devices) == 300
    d7 = config.sites[0].devices[7]
    assert (d7.name, d7.address, d7.tags) == ("d7", "10.0.0.7", {"room": "r1"})


CREDENTIAL_URLS = [
    "http://admin:hunter2@db.example:99999",  # invalid port: the old message quoted it all
    "https://admin:hunter2@db.example:8086",
    "ftp://admin:hunter2@db.example",
    "admin:hunter2@db.example:8086",
    "http://admin:hunter2@[::1",  # does not even parse
]


@pytest.mark.parametrize("url", CREDENTIAL_URLS)
def test_credentials_in_a_url_are_never_echoed(tmp_path, capsys, url):
    for text in (f"influxdb:\n  url: '{url}'\n",
                 f"sites:\n  - name: s\n    devices:\n      - name: bmc\n        redfish: {{url: '{url}'}}\n",
                 f"sites:\n  - name: s\n    devices:\n      - name: p\n        http: {{type: json, url: '{url}',"
                 " fields: {watts: {path: w}}}\n"):
        path = write(tmp_path, text)
        err = refused_by_every_command(capsys, path)
        assert "hunter2" not in err, err
        assert str(path) in err and "url" in err


# Profiles: name -> (files to write in the profile folder, what stderr must say)
PROFILE_CASES: dict[str, tuple[dict[str, str | bytes], str]] = {
    "extends 1500 deep": (
        {f"c{i}.yaml": f"description: link {i}\n" + (f"extends: [c{i + 1}]\n" if i < 1499 else "")
         for i in range(1500)},
        "c1483.yaml:2: extends[0]: extends chains 17 profiles deep (at most 16): c1483 -> c1484"),
    "extends loop": (
        {"a.yaml": "extends: [b]\n", "b.yaml": "description: b\nextends:\n  - if-mib\n  - a\n"},
        "b.yaml:4: extends[1]: extends loops: a -> b -> a"),
    "extends itself": ({"s.yaml": "kind: pdu\nextends: [s]\n"}, "s.yaml:2: extends[0]: extends loops: s -> s"),
    "not utf-8": ({"m.yaml": b"description: m\xf6ter\n"}, "m.yaml:1: not UTF-8 text"),
    "duplicate key": ({"m.yaml": "kind: pdu\nmetrics: []\nkind: ups\n"}, "m.yaml:3: kind: appears twice"),
    "duplicate key in a symbol": (
        {"m.yaml": "metrics:\n  - symbol:\n      OID: 1.3.6.1.4.1.9.1.0\n      name: p\n      field: watts\n"
                   "      field: va\n"},
        "m.yaml:6: metrics[0].symbol.field: appears twice"),
    "empty profile": ({"m.yaml": "\n"}, "m.yaml:1: the file is empty"),
    "alias bomb": (
        {"m.yaml": "description: &a [x, x, x, x, x, x, x, x, x, x]\n"
                   + "".join(f"x{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))},
        "values; with aliases the file expands to"),
}


@pytest.mark.parametrize("case", sorted(PROFILE_CASES))
def test_bad_profile_is_refused_by_every_command(tmp_path, capsys, case):
    files, expected = PROFILE_CASES[case]
    folder = tmp_path / "profiles"
    folder.mkdir()
    for name, text in files.items():
        write(folder, text, name)
    path = write(tmp_path, "collector:\n  profile_dirs: [profiles]\n" + DEVICE)
    err = refused_by_every_command(capsys, path)
    assert f"{folder}/{expected}" in err or (expected in err and str(folder) in err), err
    code, err_list = run_cli(capsys, "profiles", "list", "--config", str(path))
    assert code == cli.EXIT_BAD_INPUT and err_list == err


def test_extends_within_the_limit_resolve(tmp_path, capsys):
    folder = tmp_path / "profiles"
    folder.mkdir()
    for i in range(16):
        write(folder, f"description: link {i}\n" + (f"extends: [c{i + 1}]\n" if i < 15 else "kind: meter\n"), f"c{i}.yaml")
    path = write(tmp_path, "collector:\n  profile_dirs: [profiles]\n" + DEVICE + "        profile: c0\n")
    loaded = load(path)
    assert loaded.profiles.get("c0").kind == "meter"
    code, err = run_cli(capsys, "check", "--config", str(path))
    assert code == 0, err


# -- the spool: one per config --------------------------------------------------------


def test_two_configs_in_one_folder_have_their_own_spools(tmp_path):
    a = load(write(tmp_path, DEVICE, "a.yaml")).config
    b = load(write(tmp_path, DEVICE, "b.yaml")).config
    assert a.spool.path == tmp_path.resolve() / "a.spool.db"
    assert b.spool.path == tmp_path.resolve() / "b.spool.db"
    # The per-shard and `poll --once` suffixes still apply on top.
    assert spool_path(a.spool.path, (0, 2)).name == "a.spool.shard1of2.db"
    assert spool_path(a.spool.path, None, once=True).name == "a.spool.once.db"
    # An explicit path is still relative to the config file.
    c = load(write(tmp_path, "spool: {path: spools/c.db}\n" + DEVICE, "c.yaml")).config
    assert c.spool.path == tmp_path.resolve() / "spools" / "c.db"


def test_points_left_in_the_old_shared_spool_are_pointed_out(tmp_path, caplog):
    path = write(tmp_path, DEVICE)
    load(path)
    assert "default spool before" not in caplog.text
    with Spool(tmp_path / "greenwatch-spool.db") as old:
        old.append(["power,site=s watts=1 1"] * 3)
    load(path)
    assert "greenwatch-spool.db, the default spool before spools were named after their config, holds 3 points" \
        in caplog.text
    caplog.clear()
    with Spool(tmp_path / "greenwatch-spool.db") as old:
        load(path)  # an older greenwatch still running on it
        assert "holds points (it is in use)" in caplog.text
        caplog.clear()
        old.ack(old.peek(10)[0])
    load(path)  # drained: nothing to say
    assert "default spool before" not in caplog.text
    caplog.clear()
    # Pointed at it, it is this config's spool again: nothing to say.
    load(write(tmp_path, "spool: {path: greenwatch-spool.db}\n" + DEVICE))
    assert "default spool before" not in caplog.text


async def test_points_spooled_for_one_config_never_reach_anothers_influxdb(tmp_path, influxdb, influx_db):
    """Config a's InfluxDB is down, so its points stay spooled; config b, in the same
    folder, then writes to a working InfluxDB. With a shared spool b sent a's points
    to b's database."""
    async def meter(request: web.Request) -> web.Response:
        return web.json_response({"watts": 120.5})

    app = web.Application()
    app.router.add_get("/status", meter)
    runner, _ = await serve(app, port := free_port())
    try:
        def config(name: str, influx_url: str) -> Path:
            return write(tmp_path, f"""\
                influxdb: {{url: '{influx_url}', database: {influx_db}, timeout: 1s}}
                sites:
                  - name: lab
                    devices:
                      - name: meter-{name}
                        http: {{type: json, url: 'http://127.0.0.1:{port}/status', fields: {{watts: {{path: watts}}}}}}
                """, f"{name}.yaml")

        down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        async with Service(load(config("a", down)), once=True) as service:
            results, flushed = await service.poll_once(flush_timeout_s=0.5)
            assert results[0].up and not flushed
        async with Service(load(config("b", influxdb.url)), once=True) as service:
            results, flushed = await service.poll_once(flush_timeout_s=10)
            assert results[0].up and flushed
        devices = {row["device"] for row in influxdb.rows('SELECT watts, device FROM "power"', influx_db)}
        assert devices == {"meter-b"}
        assert (tmp_path / "a.spool.once.db").exists() and (tmp_path / "b.spool.once.db").exists()
    finally:
        await runner.cleanup()


def test_check_accepts_a_good_config_and_says_so(tmp_path, capsys):
    path = write(tmp_path, DEVICE)
    code = cli.main(["check", "--config", str(path)])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    # It names the spool the config's points wait in.
    assert "valid: 1 sites, 1 devices" in out and f"spool {tmp_path.resolve() / 'greenwatch.spool.db'}" in out
    # A config that polls nothing is valid, but check says so.
    code = cli.main(["check", "--config", str(write(tmp_path, "sites: []\n", "none.yaml"))])
    assert code == 0 and "no enabled devices, so run would poll nothing" in capsys.readouterr().err
    # check creates nothing, not even the spool it checked could be created.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["greenwatch.yaml", "none.yaml"]



def test_what_check_accepts_at_the_edges_run_starts_and_stops(tmp_path, influxdb, influx_db):
    """The other half of "check refuses what run would": values at the edges of what
    check accepts (the longest interval, the smallest spool, a spool in folders not
    yet made, a CA file, a numeric community and tags) are run by `greenwatch run`."""
    cert = tmp_path / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(tmp_path / "key.pem"), "-out", str(cert), "-days", "2",
                    "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    path = write(tmp_path, f"""\
        influxdb: {{url: '{influxdb.url}/', database: {influx_db}, token: t0k, ca_file: ca.pem, timeout: 1ms}}
        spool: {{path: not/yet/made/x.db, max_size: 1}}
        defaults: {{interval: 8784h, timeout: 1ms}}
        sites:
          - name: s
            tags: {{floor: 3}}
            devices:
              - name: a
                address: 127.0.0.1:{free_port()}
                snmp: {{version: 2c, community: 12345678}}
                tags: {{rack: 7}}
        """)
    assert cli.main(["check", "--config", str(path)]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "greenwatch.cli", "run", "--config", str(path)],
                            stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "polling 1 devices" in line:
                break
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(seen) + (rest or "")
    assert proc.returncode == 0 and "Traceback" not in output, output
    assert (tmp_path / "not/yet/made/x.db").exists()
