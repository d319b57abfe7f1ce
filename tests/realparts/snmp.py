"""Real SNMP agents for the tests, on 127.0.0.1 with free UDP ports and temp dirs.

`snmpsim` (session scope) is a factory of snmpsim command responders, each serving
`.snmprec` recordings under one community per recording:

    agent = snmpsim.start({"ups-eaton": path_to_recording, "pdu-apc": other_path})
    agent.address            # "127.0.0.1:PORT"; communities "ups-eaton" and "pdu-apc"

`snmpd` (session scope) is one net-snmp `snmpd`: the real C agent with the host MIBs,
community `public` (v1/v2c, read-only, whole tree) and SNMPv3 USM users (see SNMPD_USERS).

Both are stopped by process id at the end of the session. A missing binary, an agent
that does not answer within its timeout, or one that exits makes the fixture FAIL
with the agent's own output; nothing here ever skips.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from realparts.ports import free_udp_port

__all__ = [
    "SNMPD_USERS",
    "SnmpSim",
    "SnmpSimAgent",
    "SnmpV3User",
    "SnmpdAgent",
    "require_executable",
    "silent_agent",
    "snmpd",
    "snmpsim",
]

HOST = "127.0.0.1"
PROBE_OID = "1.3.6.1.2.1.1.2.0"  # sysObjectID.0; any reply, even noSuchObject, will do
START_TIMEOUT = 20.0  # seconds until an agent must answer
STOP_TIMEOUT = 5.0  # seconds after SIGTERM before SIGKILL
BIND_ATTEMPTS = 3  # fresh ports to try when another process took ours

# snmpsim: the brief's limit of data files per responder process.
MAX_DATA_FILES = 30
# snmpsim's own variation modules to load. Its default is every module it ships,
# and the redis and sql ones log errors when they are not configured.
DEFAULT_VARIATION_MODULES = ("numeric", "writecache", "delay", "error")
# Files snmpsim serves, by suffix; anything else is copied as .snmprec.
_RECORD_SUFFIXES = (".snmprec", ".snmpwalk", ".sapwalk", ".dump", ".MVC")
_COMMUNITY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# ---------------------------------------------------------------------------
# helpers shared by both agents


def require_executable(name: str, hint: str, extra_dirs: Iterable[str | os.PathLike] = ()) -> str:
    """Full path of `name`, looked up in `extra_dirs` then PATH; FAIL (never skip) if absent."""
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(f"{name} not found (looked in {[str(d) for d in extra_dirs]} and PATH): {hint}", pytrace=False)
    raise AssertionError("unreachable")  # pytest.fail raises


def _python_script_dirs() -> list[str]:
    """Where pip puts console scripts for the interpreter running pytest."""
    dirs = [str(Path(sys.executable).parent)]
    scripts = sysconfig.get_path("scripts")
    if scripts and scripts not in dirs:
        dirs.append(scripts)
    return dirs


def _ber(tag: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 0x80:
        length = bytes([n])
    else:
        octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(octets)]) + octets
    return bytes([tag]) + length + payload


def _ber_int(value: int) -> bytes:
    return _ber(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def _ber_oid(oid: str) -> bytes:
    arcs = [int(a) for a in oid.strip(".").split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return _ber(0x06, bytes(out))


def _v2c_get(community: str, oid: str, request_id: int) -> bytes:
    varbind = _ber(0x30, _ber_oid(oid) + b"\x05\x00")
    pdu = _ber(0xA0, _ber_int(request_id) + _ber_int(0) + _ber_int(0) + _ber(0x30, varbind))
    return _ber(0x30, _ber_int(1) + _ber(0x04, community.encode()) + pdu)


def _answers(port: int, community: str, timeout: float = 0.1) -> bool:
    """True if an SNMPv2c GET to HOST:port gets any SNMP reply within `timeout`."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((HOST, port))
            sock.send(_v2c_get(community, PROBE_OID, int(time.monotonic_ns() & 0x3FFFFFFF)))
            reply = sock.recv(65535)
        except (ConnectionRefusedError, TimeoutError, OSError):
            return False
    return reply[:1] == b"\x30"


def _owns_udp_port(pid: int, port: int) -> bool | None:
    """Whether process `pid` holds a UDP socket bound to HOST:port (None: cannot tell)."""
    want = f"{'0100007F' if sys.byteorder == 'little' else '7F000001'}:{port:04X}"
    try:
        with open("/proc/net/udp") as table:
            inodes = {
                f"socket:[{fields[9]}]"
                for fields in (line.split() for line in list(table)[1:])
                if len(fields) > 9 and fields[1] in (want, f"00000000:{port:04X}")
            }
        fd_dir = Path(f"/proc/{pid}/fd")
        links = set()
        for fd in fd_dir.iterdir():
            try:
                links.add(os.readlink(fd))
            except OSError:
                continue
    except OSError:
        return None
    return bool(inodes & links)


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output file)"
    text = text.strip()
    if not text:
        return "(empty)"
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _stop_process(proc: subprocess.Popen | None) -> None:
    """SIGTERM by pid, then SIGKILL if it has not gone after STOP_TIMEOUT."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=STOP_TIMEOUT)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when pytest dies (PR_SET_PDEATHSIG), so an
    interrupted or killed session leaves no agent behind."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)


class _PortTaken(Exception):
    """The agent could not bind its port: someone took it after free_udp_port()."""


# ---------------------------------------------------------------------------
# snmpsim


class SnmpSimAgent:
    """One snmpsim command responder process serving one or more communities."""

    def __init__(self, directory: Path, recordings: dict[str, Path], command: list[str], env: dict[str, str]):
        self.directory = directory  # this agent's own temp dir
        self.recordings = recordings  # {community: the recording it was copied from}
        self.data_dir = directory / "data"  # <community>.snmprec files
        self.cache_dir = directory / "cache"  # snmpsim's indices of the data files
        self.log_path = directory / "snmpsim.log"  # its stdout and stderr
        self.communities = tuple(recordings)  # one per data file, in the order given
        self.host = HOST
        self.port = 0
        self.startup_seconds = 0.0  # from launch until it answered a GET
        self.process: subprocess.Popen | None = None
        self._command = command
        self._env = env
        self._log = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _launch(self, port: int) -> None:
        self.port = port
        self._launched_at = time.monotonic()
        self._listening_seen_at: float | None = None
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [*self._command, f"--agent-udpv4-endpoint={self.address}"],
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self._env,
            cwd=self.directory,
        )

    def _ready(self) -> bool:
        """One readiness check; raises _PortTaken or RuntimeError on a hopeless start."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"snmpsim exited with code {self.process.returncode}")
        if _answers(self.port, self.communities[0]):
            if _owns_udp_port(self.process.pid, self.port) is False:
                raise _PortTaken  # something else answered on our port
            return True
        # snmpsim does not exit when its bind fails: it logs "Listening at" and then
        # binds inside its event loop, swallowing the error. Notice it from /proc.
        if self._listening_seen_at is None:
            if b"Listening at" in self.log_path.read_bytes():
                self._listening_seen_at = time.monotonic()
        elif time.monotonic() - self._listening_seen_at > 2.0:
            if _owns_udp_port(self.process.pid, self.port) is False:
                raise _PortTaken
        return False

    def stop(self) -> None:
        """Stop the responder (SIGTERM by pid, SIGKILL if needed). Idempotent."""
        _stop_process(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __repr__(self) -> str:
        return f"<SnmpSimAgent {self.address} pid={self.pid} communities={list(self.communities)}>"


class SnmpSim:
    """The `snmpsim` fixture: starts snmpsim command responders, stops them at session end."""

    def __init__(self, base_dir: Path):
        self.base_dir = base_dir
        self.agents: list[SnmpSimAgent] = []
        self.executable = require_executable(
            "snmpsim-command-responder",
            "install the test extras: python3 -m pip install -e '.[test]' (snmpsim, and pysmi which it needs)",
            _python_script_dirs(),
        )
        self._modules_dirs: dict[tuple[str, ...], Path] = {}
        self._count = 0

    def _variation_modules_dir(self, modules: tuple[str, ...]) -> Path:
        if modules not in self._modules_dirs:
            try:
                import snmpsim as snmpsim_package
            except ImportError as exc:
                pytest.fail(f"snmpsim is not importable ({exc}): python3 -m pip install -e '.[test]'", pytrace=False)
            shipped = Path(snmpsim_package.__file__).parent / "variation"
            target = self.base_dir / ("variation-" + "-".join(modules or ("none",)))
            target.mkdir(exist_ok=True)
            for name in modules:
                source = shipped / f"{name}.py"
                if not source.is_file():
                    pytest.fail(f"snmpsim variation module {name!r} not found in {shipped}", pytrace=False)
                shutil.copyfile(source, target / source.name)
            self._modules_dirs[modules] = target
        return self._modules_dirs[modules]

    def _prepare(
        self, recordings: Mapping[str, str | os.PathLike], variation_modules: Iterable[str]
    ) -> SnmpSimAgent:
        if not recordings:
            raise ValueError("snmpsim.start() needs at least one recording")
        if len(recordings) > MAX_DATA_FILES:
            raise ValueError(
                f"{len(recordings)} recordings for one snmpsim process; at most {MAX_DATA_FILES}: "
                "start several agents"
            )
        for community, source in recordings.items():
            if not _COMMUNITY_RE.match(community):
                raise ValueError(f"community {community!r}: use letters, digits, '.', '_' and '-'")
            if not Path(source).is_file():
                raise FileNotFoundError(f"recording for community {community!r} not found: {source}")
        self._count += 1
        directory = self.base_dir / f"agent-{self._count}"
        agent_data = directory / "data"
        agent_data.mkdir(parents=True)
        (directory / "cache").mkdir()
        for community, source in recordings.items():
            source = Path(source)
            suffix = source.suffix if source.suffix in _RECORD_SUFFIXES else ".snmprec"
            shutil.copyfile(source, agent_data / f"{community}{suffix}")
        modules_dir = self._variation_modules_dir(tuple(variation_modules))
        command = [
            self.executable,
            f"--data-dir={agent_data}",
            f"--cache-dir={directory / 'cache'}",
            f"--variation-modules-dir={modules_dir}",
            "--log-level=error",
        ]
        env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}
        agent = SnmpSimAgent(directory, {c: Path(src) for c, src in recordings.items()}, command, env)
        self.agents.append(agent)
        return agent

    def start(
        self,
        recordings: Mapping[str, str | os.PathLike],
        *,
        variation_modules: Iterable[str] = DEFAULT_VARIATION_MODULES,
        timeout: float = START_TIMEOUT,
    ) -> SnmpSimAgent:
        """Serve each recording under its community; return once the agent answers a GET."""
        return self.start_many([recordings], variation_modules=variation_modules, timeout=timeout)[0]

    def start_many(
        self,
        recording_sets: Iterable[Mapping[str, str | os.PathLike]],
        *,
        variation_modules: Iterable[str] = DEFAULT_VARIATION_MODULES,
        timeout: float = START_TIMEOUT,
    ) -> list[SnmpSimAgent]:
        """Start one agent per recordings mapping, all at once (their startups overlap)."""
        modules = tuple(variation_modules)
        agents = [self._prepare(recordings, modules) for recordings in recording_sets]
        attempts = {id(agent): 1 for agent in agents}
        for agent in agents:
            agent._launch(free_udp_port(HOST))
        deadline = time.monotonic() + timeout
        pending = list(agents)
        while pending:
            for agent in list(pending):
                failure = None
                try:
                    ready = agent._ready()
                except _PortTaken:
                    ready = False
                    agent.stop()
                    if attempts[id(agent)] >= BIND_ATTEMPTS:
                        failure = f"could not bind a free UDP port in {BIND_ATTEMPTS} attempts"
                    else:
                        attempts[id(agent)] += 1
                        agent._launch(free_udp_port(HOST))
                except RuntimeError as exc:
                    failure = str(exc)
                if failure:
                    self._fail(agent, failure)  # outside the except: no chained traceback
                if ready:
                    agent.startup_seconds = time.monotonic() - agent._launched_at
                    pending.remove(agent)
            if pending and time.monotonic() > deadline:
                self._fail(pending[0], f"no answer to an SNMP GET within {timeout:g} s")
            if pending:
                time.sleep(0.02)
        return agents

    def _fail(self, agent: SnmpSimAgent, reason: str) -> None:
        agent.stop()
        pytest.fail(
            f"snmpsim agent at {agent.address}: {reason}\n"
            f"recordings: {', '.join(f'{c} <- {src}' for c, src in agent.recordings.items())}\n"
            f"command: {' '.join(agent._command)} --agent-udpv4-endpoint={agent.address}\n"
            f"output ({agent.log_path}):\n{_tail(agent.log_path)}",
            pytrace=False,
        )

    def stop_all(self) -> None:
        for agent in self.agents:
            agent.stop()


@pytest.fixture(scope="session")
def snmpsim(tmp_path_factory: pytest.TempPathFactory):
    """Factory of snmpsim agents: `snmpsim.start({community: recording_path}) -> SnmpSimAgent`."""
    manager = SnmpSim(tmp_path_factory.mktemp("snmpsim"))
    try:
        yield manager
    finally:
        manager.stop_all()


# ---------------------------------------------------------------------------
# net-snmp snmpd


@dataclass(frozen=True)
class SnmpV3User:
    """An SNMPv3 USM user of the snmpd fixture.

    Protocols are spelled as greenwatch's config and engines spell them ("SHA",
    "SHA256", "AES" = AES-128 CFB); `net_snmp_auth_proto` is net-snmp's spelling.
    """

    name: str
    auth_proto: str
    auth_key: str
    priv_proto: str | None = None
    priv_key: str | None = None

    @property
    def security_level(self) -> str:
        return "authPriv" if self.priv_proto else "authNoPriv"

    @property
    def net_snmp_auth_proto(self) -> str:
        """"SHA-256" for "SHA256": what snmpd.conf's createUser and snmpcmd's -a take."""
        return re.sub(r"^SHA(\d+)$", r"SHA-\1", self.auth_proto)


SNMPD_USERS: dict[str, SnmpV3User] = {
    user.name: user
    for user in (
        SnmpV3User("gw-sha-aes", "SHA", "gw-sha-auth-secret", "AES", "gw-aes-priv-secret"),
        SnmpV3User("gw-sha256-aes", "SHA256", "gw-sha256-auth-secret", "AES", "gw-sha256-priv-secret"),
        SnmpV3User("gw-authnopriv", "SHA", "gw-authnopriv-secret"),
    )
}


def _proto(name: str | None) -> str | None:
    if not name:
        return None
    name = name.upper().replace("-", "").replace("_", "")
    return "AES" if name == "AES128" else name


class SnmpdAgent:
    """One net-snmp snmpd process."""

    community = "public"  # read-only, v1 and v2c, the whole tree

    def __init__(self, directory: Path, executable: str):
        self.directory = directory
        self.conf_path = directory / "snmpd.conf"
        self.persistent_dir = directory / "persist"  # SNMP_PERSISTENT_DIR
        self.pid_path = directory / "snmpd.pid"
        self.log_path = directory / "snmpd.log"
        self.users: dict[str, SnmpV3User] = dict(SNMPD_USERS)
        self.host = HOST
        self.port = 0
        self.startup_seconds = 0.0
        self.process: subprocess.Popen | None = None
        self.executable = executable
        self._log = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def v3_user(self, auth_proto: str, priv_proto: str | None = None) -> SnmpV3User:
        """The user with these protocols: v3_user("SHA256", "AES"), v3_user("SHA")."""
        auth, priv = _proto(auth_proto), _proto(priv_proto)
        for user in self.users.values():
            if (user.auth_proto, user.priv_proto) == (auth, priv):
                return user
        have = ", ".join(f"{u.auth_proto}/{u.priv_proto or '-'}" for u in self.users.values())
        raise KeyError(f"snmpd fixture has no SNMPv3 user with auth {auth_proto!r} and priv {priv_proto!r}: {have}")

    def v3_args(self, user: str | SnmpV3User) -> list[str]:
        """net-snmp command-line options (-v3 -l -u -a -A [-x -X]) for one of `users`."""
        u = user if isinstance(user, SnmpV3User) else self.users[user]
        args = ["-v3", "-l", u.security_level, "-u", u.name, "-a", u.net_snmp_auth_proto, "-A", u.auth_key]
        if u.priv_proto:
            args += ["-x", u.priv_proto, "-X", u.priv_key]
        return args

    def write_config(self) -> None:
        self.persistent_dir.mkdir(exist_ok=True)
        (self.directory / "mibs").mkdir(exist_ok=True)
        lines = [
            "# greenwatch test agent: written by tests/realparts/snmp.py",
            "sysContact greenwatch tests",
            "sysLocation 127.0.0.1 test agent",
            "dontLogTCPWrappersConnects yes",
            f"rocommunity {self.community} {HOST}",
        ]
        for u in self.users.values():
            if u.priv_proto:
                lines.append(f'createUser {u.name} {u.net_snmp_auth_proto} "{u.auth_key}" {u.priv_proto} "{u.priv_key}"')
                lines.append(f"rouser {u.name} priv")
            else:
                lines.append(f'createUser {u.name} {u.net_snmp_auth_proto} "{u.auth_key}"')
                lines.append(f"rouser {u.name} auth")
        self.conf_path.write_text("\n".join(lines) + "\n")

    def launch(self, port: int) -> None:
        self.port = port
        self._launched_at = time.monotonic()
        env = {
            **os.environ,
            "SNMP_PERSISTENT_DIR": str(self.persistent_dir),
            "SNMPCONFPATH": str(self.directory),
            "MIBS": "",
            "MIBDIRS": str(self.directory / "mibs"),
        }
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                self.executable,
                "-f",  # stay in the foreground: our child, stopped by its pid
                "-Lo",  # log to stdout (our log file)
                "-C",  # read no config file but ours
                "-c", str(self.conf_path),
                "-p", str(self.pid_path),
                # as Debian's own service does: no SMUX listener on TCP 199, no
                # DisMan event triggers
                "-I", "-smux,mteTrigger,mteTriggerConf",
                f"udp:{self.address}",
            ],
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.directory,
        )

    def stop(self) -> None:
        """Stop snmpd (SIGTERM by pid, SIGKILL if needed). Idempotent."""
        _stop_process(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __repr__(self) -> str:
        return f"<SnmpdAgent {self.address} pid={self.pid}>"


def _start_snmpd(directory: Path, timeout: float = START_TIMEOUT) -> SnmpdAgent:
    executable = require_executable(
        "snmpd",
        "install Debian's net-snmp agent: apt-get install snmpd (.ci/run does)",
        ["/usr/sbin", "/usr/local/sbin"],
    )
    agent = SnmpdAgent(directory, executable)
    agent.write_config()

    def fail(reason: str) -> None:
        agent.stop()
        pytest.fail(
            f"snmpd at {agent.address}: {reason}\nconfig {agent.conf_path}:\n{agent.conf_path.read_text()}"
            f"output ({agent.log_path}):\n{_tail(agent.log_path)}",
            pytrace=False,
        )

    for attempt in range(1, BIND_ATTEMPTS + 1):
        agent.launch(free_udp_port(HOST))
        deadline = time.monotonic() + timeout
        while True:
            assert agent.process is not None
            if agent.process.poll() is not None:
                if b"Error opening specified endpoint" in agent.log_path.read_bytes() and attempt < BIND_ATTEMPTS:
                    agent.stop()
                    break  # someone took the port: try another
                fail(f"snmpd exited with code {agent.process.returncode}")
            if _answers(agent.port, agent.community):
                if _owns_udp_port(agent.process.pid, agent.port) is False:
                    fail("another process answers on snmpd's port")
                agent.startup_seconds = time.monotonic() - agent._launched_at
                return agent
            if time.monotonic() > deadline:
                fail(f"no answer to an SNMP GET within {timeout:g} s")
            time.sleep(0.01)
    fail(f"could not bind a free UDP port in {BIND_ATTEMPTS} attempts")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def snmpd(tmp_path_factory: pytest.TempPathFactory):
    """A running net-snmp snmpd: `.address`, `.community`, `.users`, `.v3_user()`, `.v3_args()`."""
    agent = _start_snmpd(tmp_path_factory.mktemp("snmpd"))
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def silent_agent() -> Iterator[str]:
    """An SNMP 'agent' that never answers: a bound UDP socket nobody reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    yield f"{HOST}:{sock.getsockname()[1]}"
    sock.close()
