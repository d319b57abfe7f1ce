"""The README's configuration reference is a config greenwatch accepts."""

from __future__ import annotations

import re
from pathlib import Path

from greenwatch.service import load

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_config_reference_loads(tmp_path, monkeypatch):
    text = README.read_text()
    section = text[text.index("## Configuration reference"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    for name in ("INFLUX_TOKEN", "PDU_COMMUNITY", "UPS_AUTH_KEY", "BMC_PASSWORD"):
        monkeypatch.setenv(name, f"{name.lower()}-value-123")
    for secret_file in re.findall(r"\{file: ([^}]+)\}", block):
        (tmp_path / secret_file).write_text("from-a-file-123\n")
    (tmp_path / "profiles").mkdir()
    config = tmp_path / "greenwatch.yaml"
    config.write_text(block)
    loaded = load(config)
    names = [d.name for _, d in loaded.config.devices()]
    assert names == ["pdu-a1", "esx-07", "desk-plug-14", "ups-1"]
