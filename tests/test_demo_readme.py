"""The README's promises: its run command (`./demo/run.sh`, as a user types it, here with
everything already installed) reaches "report written" and the live lines, and Ctrl-C
ends it with exit 0; every dependency in pyproject.toml has its reason in the README's
table; every local link in the README points at a file that exists."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tomllib
from pathlib import Path

from test_demo import OPEN_TIMEOUT_S, alive, descendants, read_until

ROOT = Path(__file__).resolve().parent.parent
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


def test_the_readmes_run_command_reaches_report_written_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    command = re.search(r"^(\./demo/run\.sh)\s", README, re.MULTILINE).group(1)
    env = dict(os.environ, DEMO_DIR=str(tmp_path / "demo-data"), COLUMNS="200")
    env.pop("INFLUX_PORT", None)
    env.pop("GRAFANA_URL", None)
    proc = subprocess.Popen(["bash", command, "--days", "1", "--interval", "5"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    children: set[int] = set()
    try:
        read_until(proc, "report written:", OPEN_TIMEOUT_S, lines)
        report = Path(re.search(r"report written: (\S+)", lines[-1]).group(1))
        assert report.is_file() and report.is_relative_to(tmp_path)
        read_until(proc, "Ctrl-C stops everything", OPEN_TIMEOUT_S, lines)
        children = descendants(proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + rest
    assert children and not [p for p in children if alive(p)]
