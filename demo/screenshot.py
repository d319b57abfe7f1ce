"""Refresh the README's terminal pictures from a running `greenwatch demo`: the output of
`greenwatch energy` (the report's week, per site) and `greenwatch status`, rendered to
SVG with rich's export, exactly as printed (colours included, paths shortened).

    greenwatch demo --dir demo-data &     # wait for "open these"
    python demo/screenshot.py [--dir demo-data]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

ROOT = Path(__file__).resolve().parent.parent


def render(args: list[str], out: Path, title: str, data: Path, width: int) -> None:
    env = dict(os.environ, FORCE_COLOR="1", COLUMNS=str(width))
    run = subprocess.run([sys.executable, "-m", "greenwatch.cli", "--log-level", "WARNING", *args],
                         capture_output=True, text=True, env=env, check=True)
    console = Console(record=True, width=width, file=open(os.devnull, "w"))  # noqa: SIM115 (recorded, not written)
    console.print(Text.from_ansi(run.stdout.replace(str(data) + "/", "demo-data/")))
    console.save_svg(str(out), title=title)
    print(f"wrote {out.relative_to(ROOT)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=ROOT / "demo-data")
    data = p.parse_args().dir.resolve()
    config = str(data / "greenwatch.yaml")
    today = dt.date.today()
    monday = today - dt.timedelta(days=today.weekday() + 7)  # the report's week: the last complete one
    render(["energy", "--config", config, "--from", monday.isoformat(),
            "--to", (monday + dt.timedelta(days=7)).isoformat()],
           ROOT / "docs" / "demo-energy.svg", "greenwatch energy (the demo's last complete week)", data, 150)
    render(["status", "--config", config], ROOT / "docs" / "demo-status.svg", "greenwatch status (the demo, live)",
           data, 100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
