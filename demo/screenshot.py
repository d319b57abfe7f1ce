"""Refresh the README's picture: `greenwatch poll --once` against the running demo,
rendered to SVG. Run while ./demo/run.sh is up:  python demo/screenshot.py"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

ROOT = Path(__file__).resolve().parent.parent

env = dict(os.environ, FORCE_COLOR="1", COLUMNS="96")
run = subprocess.run(
    [sys.executable, "-m", "greenwatch.cli", "--log-level", "WARNING", "poll", "--once",
     "--config", str(ROOT / "demo-data" / "greenwatch.yaml")],
    capture_output=True, text=True, env=env, check=True,
)
console = Console(record=True, width=96, file=open(os.devnull, "w"))
console.print(Text.from_ansi(run.stdout.replace(str(ROOT) + "/", "")))
console.save_svg(str(ROOT / "docs" / "poll-once.svg"), title="greenwatch poll --once")
print("wrote docs/poll-once.svg")
