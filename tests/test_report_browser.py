"""The report as people see it: its HTML rendered by headless Chromium (Debian's
`chromium`) from a real local HTTP server, which logs every request, so a missing or
broken image is a request that failed or never came; and the PDF turned into PNG
pages by pdftoppm (poppler-utils)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image
from realparts.ports import free_tcp_port
from realparts.web import serve
from test_report_mail import WEEK, make_estate, parse_html, tls_files, write_config, write_estate  # noqa: F401 (fixture)

from greenwatch.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
GREEN = (0x1B, 0x7F, 0x3B)  # the header's colour


@pytest.fixture
def report_dir(influxdb, influx_db, tmp_path, tls_files) -> Path:
    write_estate(influxdb, influx_db, make_estate())
    config = write_config(tmp_path, influxdb, influx_db, 25, tls_files[0])
    out = tmp_path / "report"
    assert main(["report", "--config", str(config), "--week", WEEK, "--out", str(out)]) == 0
    return out


async def _serve(folder: Path, log: list[tuple[str, int, str]]) -> tuple[web.AppRunner, int]:
    # Logged as each response goes out: a static file's status and type are only
    # known then (404 for a missing file, image/png for a chart).
    async def record(request: web.Request, response: web.StreamResponse) -> None:
        log.append((request.path, response.status, response.content_type))

    app = web.Application()
    app.on_response_prepare.append(record)
    app.router.add_static("/", folder)
    runner, _ = await serve(app, port := free_tcp_port())
    return runner, port


async def screenshot(url: str, out: Path, profile: Path, width: int = 800, height: int = 2000) -> None:
    assert CHROMIUM, "chromium is not installed (Debian package chromium; .ci/run installs it)"
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
        f"--window-size={width},{height}", f"--screenshot={out}", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()  # our own process, by its pid
        await proc.wait()
        raise
    assert proc.returncode == 0 and out.exists(), stderr.decode()[-2000:]


def _colours(path: Path) -> Image.Image:
    return Image.open(path).convert("RGB")


async def test_chromium_renders_the_report_with_every_image(report_dir: Path, tmp_path: Path) -> None:
    html_file = report_dir / f"greenwatch-{WEEK}.html"
    srcs = parse_html(html_file.read_text()).images
    assert len(srcs) == 2 and all(re.fullmatch(r"greenwatch-2026-W47-[a-z-]+\.png", s) for s in srcs), srcs
    log: list[tuple[str, int, str]] = []
    runner, port = await _serve(report_dir, log)
    try:
        shot = tmp_path / "report.png"
        await screenshot(f"http://127.0.0.1:{port}/{html_file.name}", shot, tmp_path / "chromium-profile")
    finally:
        await runner.cleanup()

    # Chromium asked for the page and for every image in it, and got each one.
    served = {path.lstrip("/"): (status, ctype) for path, status, ctype in log}
    assert served[html_file.name][0] == 200
    for src in srcs:
        assert served.get(src) == (200, "image/png"), (src, log)
    failed = [entry for entry in log if entry[1] != 200 and entry[0] != "/favicon.ico"]
    assert failed == [], failed
    # ... and drew them: the charts' bars are green, at least a few thousand pixels
    # of it below the header (a broken image shows an icon, not bars).
    image = _colours(shot)
    width, height = image.size
    assert image.getpixel((width // 2, 30)) == GREEN  # the header band
    bar_green = sum(1 for x in range(0, width, 2) for y in range(400, min(height, 1500), 2)
                    if image.getpixel((x, y)) == GREEN)
    assert bar_green > 5000, bar_green
    # No scripts, no external stylesheets: only what a mail client keeps.
    text = html_file.read_text()
    assert "<script" not in text and "<link" not in text and "style=" in text


def test_pdf_pages_render_with_pdftoppm(report_dir: Path, tmp_path: Path) -> None:
    pdf = report_dir / f"greenwatch-{WEEK}.pdf"
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(pdf), str(tmp_path / "page")], check=True,
                   capture_output=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert 1 <= len(pages) <= 3, pages
    first = _colours(pages[0])
    # Page 1 has the charts on it: plenty of the bars' green.
    greens = sum(1 for x in range(0, first.width, 2) for y in range(0, first.height, 2)
                 if first.getpixel((x, y)) == GREEN)
    assert greens > 1000, greens
    for page in pages:  # no blank page
        assert len(_colours(page).getcolors(maxcolors=1 << 20) or []) > 20, page
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True).stdout.decode()
    assert "Top 10 savings opportunities (of 12 open)" in text
