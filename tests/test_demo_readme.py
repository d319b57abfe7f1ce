"""The README's promises: its quick start (`./demo/run.sh` in a fresh checkout, which
installs into a virtual environment of its own) reaches "report written" and the live
lines, and Ctrl-C ends it with exit 0; every dependency in pyproject.toml has its reason in the README's
table; every local link in the README points at a file that exists."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tomllib
from pathlib import Path

from test_demo import OPEN_TIMEOUT_S, alive, descendants, free_port, read_until

ROOT = Path(__file__).resolve().parent.parent
INSTALL_TIMEOUT_S = 600.0  # a fresh virtual environment and the demo extra from the package index
README = (ROOT / "README.md").read_text()


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_dependency_has_its_reason_in_the_table() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [_name(r) for r in project["dependencies"]]
    wanted += [_name(r) for extra in project["optional-dependencies"].values() for r in extra]
    table = README[README.index("### Dependencies, and why each"):]
    rows = [line.split("|")[1].strip().lower().replace("_", "-") for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| package")]
    names = {n for row in rows for n in re.split(r"[ ,()]+", row) if n}
    missing = sorted(set(wanted) - names)
    assert not missing, f"dependencies without a row in the README's table: {missing}"
    assert len(wanted) >= 20


def test_the_readmes_local_links_exist() -> None:
    links = re.findall(r"\]\(([^)#]+)\)", README)
    local = [link for link in links if not re.match(r"https?://", link)]
    assert len(local) >= 15
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, missing


def test_the_readmes_quick_start_in_a_fresh_checkout_reaches_report_written(tmp_path: Path) -> None:
    """As a new user: a checkout with no virtual environment (this commit, `git archive`),
    the README's run command, which makes `.venv` and installs the demo extra from the
    package index into it, then runs the demo; Ctrl-C ends it with exit 0."""
    checkout = tmp_path / "greenwatch"
    checkout.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(checkout)], input=archive, check=True)
    command = re.search(r"^(\./demo/run\.sh)\s", README, re.MULTILINE).group(1)
    env = dict(os.environ, COLUMNS="200", INFLUX_PORT=str(free_port()))  # never the usual 8086
    for name in ("GRAFANA_URL", "DEMO_DIR", "VIRTUAL_ENV", "PYTHONPATH"):
        env.pop(name, None)
    proc = subprocess.Popen(["bash", command, "--days", "1", "--interval", "5"], cwd=checkout, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    children: set[int] = set()
    try:
        read_until(proc, "report written:", INSTALL_TIMEOUT_S + OPEN_TIMEOUT_S, lines)
        report = Path(re.search(r"report written: (\S+)", lines[-1]).group(1))
        assert report.is_file() and report.is_relative_to(checkout / "demo-data")
        read_until(proc, "Ctrl-C stops everything", OPEN_TIMEOUT_S, lines)
        children = descendants(proc.pid)
        # The demo ran from the checkout's own virtual environment, not from this one.
        venv = checkout / ".venv" / "bin" / "python"
        assert venv.exists()
        assert str(checkout / ".venv") in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + rest
    assert children and not [p for p in children if alive(p)]
