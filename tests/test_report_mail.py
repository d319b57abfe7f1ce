"""The weekly report sent through a real local SMTP server (aiosmtpd, STARTTLS and
AUTH, a throwaway certificate): the received message has the HTML, every inline image
the HTML references, the PDF and the CSV, and its figures equal those computed here
from the points written to the real influxd. A server that refuses mail: retried,
logged, the report kept on disk, exit 4."""

from __future__ import annotations

import csv
import datetime as dt
import email
import email.policy
import io
import random
import re
import subprocess
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from greenwatch.cli import main
from realparts.influx import InfluxServer
from realparts.ports import free_tcp_port

UTC = dt.timezone.utc
WEEK = "2026-W47"  # Monday 16 to Sunday 22 November 2026; London is on GMT then
WEEK_START = dt.datetime(2026, 11, 16, tzinfo=UTC)
PREVIOUS_START = WEEK_START - dt.timedelta(weeks=1)
LAST_YEAR_START = dt.datetime(2025, 11, 17, tzinfo=UTC)  # 2025-W47's Monday
USER, PASSWORD = "reporter", "s3cret-Pa55word-never-logged"
COMMITMENT = """\
commitment:
  name: Net zero by 2030
  baseline: {from: 2024-01-01, to: 2025-01-01, kwh: 500000, tco2e: 100}
  targets:
    - {year: 2030, metric: tco2e, cut_percent: 90}
"""


# ---------------------------------------------------------------------------- data


@dataclass
class Hour:
    site: str
    at: dt.datetime
    kwh: float
    it_kwh: float | None
    cost: float
    kgco2e: float
    coverage: float


@dataclass
class Finding:
    rule: str
    site: str
    device: str
    kwh_per_year: float
    cost_per_year: float
    kgco2e_per_year: float
    open: int = 1
    summary: str = ""

    @property
    def id(self) -> str:
        return f"{self.rule}:{self.site}/{self.device}"


@dataclass
class Estate:
    hours: list[Hour] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _hours(rng: random.Random, site: str, start: dt.datetime, base: float, it_share: float | None) -> list[Hour]:
    out = []
    for h in range(7 * 24):
        kwh = round(base * (0.7 + 0.6 * rng.random()), 3)
        out.append(Hour(site, start + dt.timedelta(hours=h), kwh,
                        None if it_share is None else round(kwh * it_share, 3), round(kwh * 0.21, 4),
                        round(kwh * 0.177, 4), 1.0 if h % 50 else 0.5))
    return out


def make_estate(seed: int = 7) -> Estate:
    """Two sites: dc-1 meters IT (category 1), office does not; dc-1 has data a year
    before, office none. Twelve open findings (the report shows ten) and one resolved."""
    rng = random.Random(seed)
    e = Estate()
    e.hours += _hours(rng, "dc-1", WEEK_START, 40.0, 0.62)
    e.hours += _hours(rng, "dc-1", PREVIOUS_START, 42.0, 0.61)
    e.hours += _hours(rng, "dc-1", LAST_YEAR_START, 47.0, 0.55)
    e.hours += _hours(rng, "office", WEEK_START, 6.0, None)
    e.hours += _hours(rng, "office", PREVIOUS_START, 5.5, None)
    # Just outside the week: must not be counted.
    e.hours.append(Hour("dc-1", WEEK_START + dt.timedelta(weeks=1), 999.0, 500.0, 1.0, 1.0, 1.0))
    for i in range(12):
        kwh = 100.0 * (i + 1) + rng.random()
        e.findings.append(Finding("after-hours-pc" if i % 2 else "zombie-server", "office" if i % 3 else "dc-1",
                                  f"dev-{i:02d}", kwh, kwh * 0.25, kwh * 0.177, summary=f"Turn off dev-{i:02d} & save"))
    e.findings.append(Finding("zombie-server", "dc-1", "gone", 99999.0, 1.0, 1.0, open=0))
    return e


def _esc_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_estate(influxdb: InfluxServer, db: str, e: Estate) -> None:
    lines = []
    for h in e.hours:
        cat = ",pue_category=1" if h.it_kwh is not None else ""
        it = f",it_kwh={h.it_kwh}" if h.it_kwh is not None else ""
        lines.append(f"site_energy,site={h.site}{cat} kwh={h.kwh}{it},cost={h.cost},kgco2e={h.kgco2e},"
                     f"coverage={h.coverage},carbon_method=\"annual\" {int(h.at.timestamp())}000000000")
    opened = WEEK_START - dt.timedelta(days=3)
    for f in e.findings:
        # Opened before the week, re-evaluated in it (a point after the week's end must not count).
        for at, is_open, state in ((opened, 1, "opened"), (WEEK_START + dt.timedelta(days=2), f.open,
                                                            "updated" if f.open else "resolved")):
            lines.append(
                f"finding,rule={f.rule},site={f.site},device={f.device},severity=warning "
                f"open={is_open}i,id={_esc_str(f.id)},state=\"{state}\",kwh_per_year={f.kwh_per_year},"
                f"cost_per_year={f.cost_per_year},currency=\"GBP\",kgco2e_per_year={f.kgco2e_per_year},"
                f"value=1.0,summary={_esc_str(f.summary)},opened_at=\"{opened:%Y-%m-%dT%H:%M:%SZ}\" "
                f"{int(at.timestamp())}000000000")
    at_end = e.findings[1]  # re-evaluated at the week's last instant: part of it
    lines.append(f"finding,rule={at_end.rule},site={at_end.site},device={at_end.device},severity=warning "
                 f"open=1i,id={_esc_str(at_end.id)},state=\"updated\",kwh_per_year={at_end.kwh_per_year + 1000},"
                 f"cost_per_year={at_end.cost_per_year},currency=\"GBP\",kgco2e_per_year={at_end.kgco2e_per_year},"
                 f"summary={_esc_str(at_end.summary)},opened_at=\"x\" "
                 f"{int((WEEK_START + dt.timedelta(weeks=1)).timestamp())}000000000")
    at_end.kwh_per_year += 1000
    late = e.findings[0]  # resolved only after the week: still open in this report
    lines.append(f"finding,rule={late.rule},site={late.site},device={late.device},severity=warning "
                 f"open=0i,id={_esc_str(late.id)},state=\"resolved\" "
                 f"{int((WEEK_START + dt.timedelta(days=8)).timestamp())}000000000")
    req = urllib.request.Request(f"{influxdb.url}/write?db={db}", data="\n".join(lines).encode(), method="POST")
    urllib.request.urlopen(req).read()


def expected_figures(e: Estate) -> dict[str, str]:
    """The figures the report must show, computed here from the points written."""
    def in_week(h: Hour, start: dt.datetime) -> bool:
        return start <= h.at < start + dt.timedelta(weeks=1)

    def sums(site: str | None, start: dt.datetime) -> dict[str, float]:
        hs = [h for h in e.hours if (site is None or h.site == site) and in_week(h, start)]
        return {"kwh": sum(h.kwh for h in hs), "it": sum(h.it_kwh or 0 for h in hs),
                "cost": sum(h.cost for h in hs), "kg": sum(h.kgco2e for h in hs),
                "cov": sum(h.coverage for h in hs) / 168}

    def after_hours(site: str | None) -> float:
        # The default calendar: Monday to Friday 08:00-18:00 London (GMT in November, no
        # bank holiday that week); an hour counts by its start here, all hours being whole.
        hs = [h for h in e.hours if (site is None or h.site == site) and in_week(h, WEEK_START)]
        out_of_hours = [h for h in hs if h.at.weekday() >= 5 or not 8 <= h.at.hour < 18]
        return sum(h.kwh for h in out_of_hours) / sum(h.kwh for h in hs)

    out: dict[str, str] = {"total.after_hours": f"{after_hours(None):.1%}"}
    for site in ("dc-1", "office"):
        out[f"{site}.after_hours"] = f"{after_hours(site):.1%}"
        now, prev, year = sums(site, WEEK_START), sums(site, PREVIOUS_START), sums(site, LAST_YEAR_START)
        out[f"{site}.kwh"] = f"{now['kwh']:,.1f}"
        out[f"{site}.cost"] = f"{now['cost']:,.2f} GBP"
        out[f"{site}.tco2e"] = f"{now['kg'] / 1000:,.3f}"
        out[f"{site}.pue"] = f"{now['kwh'] / now['it']:.2f}" if now["it"] else "n/a"
        out[f"{site}.change_previous"] = f"{(now['kwh'] - prev['kwh']) / prev['kwh']:+.1%}"
        out[f"{site}.change_last_year"] = f"{(now['kwh'] - year['kwh']) / year['kwh']:+.1%}" if year["kwh"] else "n/a"
        out[f"{site}.coverage"] = f"{now['cov']:.1%}"
    now, prev, year = sums(None, WEEK_START), sums(None, PREVIOUS_START), sums(None, LAST_YEAR_START)
    dc = sums("dc-1", WEEK_START)
    out["total.kwh"] = f"{now['kwh']:,.1f}"
    out["total.cost"] = f"{now['cost']:,.2f} GBP"
    out["total.tco2e"] = f"{now['kg'] / 1000:,.3f}"
    out["total.pue"] = f"{dc['kwh'] / dc['it']:.2f}"  # only the site that meters IT
    out["total.change_previous"] = f"{(now['kwh'] - prev['kwh']) / prev['kwh']:+.1%}"
    out["total.change_last_year"] = f"{(now['kwh'] - year['kwh']) / year['kwh']:+.1%}"
    top = sorted((f for f in e.findings if f.open), key=lambda f: -f.kwh_per_year)[:10]
    for i, f in enumerate(top, 1):
        out[f"top{i}.kwh_per_year"] = f"{f.kwh_per_year:,.0f}"
        out[f"top{i}.cost_per_year"] = f"{f.cost_per_year:,.0f} GBP"
        out[f"top{i}.tco2e_per_year"] = f"{f.kgco2e_per_year / 1000:,.3f}"
    return out


class Figures(HTMLParser):
    """The text of every element carrying data-figure (its first line of text)."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.images: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("data-figure"):
            self._open = a["data-figure"]
            self.figures[self._open] = ""
        elif tag in ("div", "br"):
            self._open = None  # the method or category under a figure is not part of it
        if tag == "img":
            self.images.append(a.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open:
            self.figures[self._open] += data.strip()


def parse_html(html: str) -> Figures:
    p = Figures()
    p.feed(html)
    return p


# ---------------------------------------------------------------------------- SMTP


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("smtp-tls")
    cert, key = base / "cert.pem", base / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


class Mailbox:
    """aiosmtpd handler: keeps what it receives; refuses every message if told to."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.messages: list[tuple[list[str], bytes]] = []
        self.attempts = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if not session.authenticated or not getattr(session, "ssl", None):
            return "530 5.7.0 authenticate over TLS first"
        if self.refuse:
            return "554 5.7.1 message refused by policy"
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() \
        and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest, tls_files: tuple[Path, Path]) -> Iterator[tuple[Controller, Mailbox]]:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    mailbox = Mailbox(refuse=getattr(request, "param", False))
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_tcp_port(), tls_context=context,
                            require_starttls=True, auth_required=True, auth_require_tls=True,
                            authenticator=_authenticator)
    controller.start()
    try:
        yield controller, mailbox
    finally:
        controller.stop()


def write_config(tmp_path: Path, influxdb: InfluxServer, db: str, port: int, cert: Path, extra: str = "",
                 recipients: str = "    - {to: [officer@example.org, cfo@example.org]}\n") -> Path:
    path = tmp_path / "greenwatch.yaml"
    path.write_text(f"""\
influxdb: {{url: "{influxdb.url}", database: {db}}}
spool: {{path: {tmp_path / 'spool.db'}}}
report:
  sender: greenwatch@example.org
  out_dir: out
  recipients:
{recipients}  smtp:
    host: 127.0.0.1
    port: {port}
    security: starttls
    username: {USER}
    password: {{file: smtp-password}}
    ca_file: {cert}
    attempts: 3
    retry_delay: 0.2s
{extra}sites:
  - name: dc-1
    energy: {{facility: [meter], it: [ups/output], category: 1}}
    devices:
      - {{name: meter, address: 127.0.0.1, snmp: {{version: 2c, community: public}}, profile: ups-mib}}
      - {{name: ups, address: 127.0.0.1, snmp: {{version: 2c, community: public}}, profile: ups-mib}}
  - name: office
""")
    (tmp_path / "smtp-password").write_text(PASSWORD + "\n")
    return path


# ---------------------------------------------------------------------------- tests


def _parts(msg: email.message.EmailMessage) -> dict[str, list[email.message.EmailMessage]]:
    out: dict[str, list[email.message.EmailMessage]] = {}
    for part in msg.walk():
        out.setdefault(part.get_content_type(), []).append(part)
    return out


def test_report_sent_over_starttls_with_auth_has_every_part_and_the_right_figures(
        influxdb, influx_db, tmp_path, tls_files, smtp_server, capsys) -> None:
    estate = make_estate()
    write_estate(influxdb, influx_db, estate)
    controller, mailbox = smtp_server
    config = write_config(tmp_path, influxdb, influx_db, controller.port, tls_files[0], extra=COMMITMENT)
    assert main(["--log-level", "DEBUG", "report", "--config", str(config), "--week", WEEK, "--send"]) == 0
    # The command logs to stderr (greenwatch/logs.py sets the root logger up afresh).
    log_text = capsys.readouterr().err

    assert len(mailbox.messages) == 1
    rcpt, raw = mailbox.messages[0]
    assert sorted(rcpt) == ["cfo@example.org", "officer@example.org"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == f"greenwatch weekly report {WEEK}"
    parts = _parts(msg)
    html = parts["text/html"][0].get_content()
    parsed = parse_html(html)

    # Every image the HTML shows is a cid: part of the message, a real PNG.
    by_cid = {p["Content-ID"].strip("<>"): p for p in parts.get("image/png", [])}
    assert len(parsed.images) == 2
    for src in parsed.images:
        assert src.startswith("cid:"), src
        png = by_cid[src[4:]].get_content()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "<script" not in html.lower()

    # The figures shown equal those computed from the points written.
    expected = expected_figures(estate)
    shown = {k: v for k, v in parsed.figures.items() if k in expected}
    assert shown == expected
    # The commitment's progress, from reports/commitment.py, in its own table.
    assert "Commitment progress" in html and "tCO2e per year" in html and "Net zero by 2030" in html
    assert re.search(r"on track|behind by", html)

    # The PDF: the same report (its text holds the same total figures).
    (pdf_part,) = parts["application/pdf"]
    pdf = pdf_part.get_content()
    assert pdf.startswith(b"%PDF") and pdf_part.get_filename() == f"greenwatch-{WEEK}.pdf"
    text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    for key in ("total.kwh", "total.tco2e", "dc-1.pue", "top1.kwh_per_year", "top10.kwh_per_year"):
        assert expected[key] in text, key
    assert "category 1" in text

    # The CSV: every finding open at the week's end, biggest kWh/yr first.
    (csv_part,) = [p for p in msg.iter_attachments() if p.get_filename() == f"greenwatch-{WEEK}-findings.csv"]
    rows = list(csv.DictReader(io.StringIO(csv_part.get_content() if isinstance(csv_part.get_content(), str)
                                           else csv_part.get_content().decode())))
    open_findings = sorted((f for f in estate.findings if f.open), key=lambda f: -f.kwh_per_year)
    assert [r["id"] for r in rows] == [f.id for f in open_findings]
    assert [float(r["kwh_per_year"]) for r in rows] == [f.kwh_per_year for f in open_findings]

    # Kept on disk too; and the password appears in no log line.
    out = tmp_path / "out"
    for name in (f"greenwatch-{WEEK}.html", f"greenwatch-{WEEK}.pdf", f"greenwatch-{WEEK}-findings.csv",
                 f"greenwatch-{WEEK}.eml", f"greenwatch-{WEEK}-daily-kwh.png"):
        assert (out / name).stat().st_size > 0, name
    assert PASSWORD not in log_text
    assert "report sent via 127.0.0.1" in log_text


def test_recipients_per_site_get_their_sites_only(influxdb, influx_db, tmp_path, tls_files, smtp_server) -> None:
    estate = make_estate()
    write_estate(influxdb, influx_db, estate)
    controller, mailbox = smtp_server
    config = write_config(tmp_path, influxdb, influx_db, controller.port, tls_files[0], recipients=(
        "    - {to: [officer@example.org]}\n    - {to: [facilities@example.org], sites: [dc-1]}\n"))

    assert main(["report", "--config", str(config), "--week", WEEK, "--send"]) == 0

    by_rcpt = {tuple(r): email.message_from_bytes(raw, policy=email.policy.default) for r, raw in mailbox.messages}
    assert set(by_rcpt) == {("officer@example.org",), ("facilities@example.org",)}
    whole = parse_html(by_rcpt[("officer@example.org",)].get_body(("html",)).get_content()).figures
    dc = parse_html(by_rcpt[("facilities@example.org",)].get_body(("html",)).get_content()).figures
    expected = expected_figures(estate)
    assert "office.kwh" in whole and "office.kwh" not in dc
    assert dc["dc-1.kwh"] == dc["total.kwh"] == expected["dc-1.kwh"]
    assert whole["total.kwh"] == expected["total.kwh"]
    dc_findings = sorted((f for f in estate.findings if f.open and f.site == "dc-1"), key=lambda f: -f.kwh_per_year)
    assert dc["top1.kwh_per_year"] == f"{dc_findings[0].kwh_per_year:,.0f}"
    assert f"top{len(dc_findings) + 1}.kwh_per_year" not in dc


@pytest.mark.parametrize("smtp_server", [True], indirect=True)
def test_refused_mail_is_retried_logged_and_kept_on_disk_exit_4(influxdb, influx_db, tmp_path, tls_files,
                                                                smtp_server, capsys) -> None:
    write_estate(influxdb, influx_db, make_estate())
    controller, mailbox = smtp_server
    config = write_config(tmp_path, influxdb, influx_db, controller.port, tls_files[0])
    assert main(["report", "--config", str(config), "--week", WEEK, "--send"]) == 4
    err = capsys.readouterr().err

    assert mailbox.attempts == 3 and mailbox.messages == []
    warnings = [line for line in err.splitlines() if re.search(r" (WARNING|ERROR) greenwatch\.report: ", line)]
    assert len(warnings) == 3
    assert all("554 5.7.1 message refused by policy" in w for w in warnings)
    assert "retrying" in warnings[0] and "giving up" in warnings[-1]
    assert "not sent: could not send the report via 127.0.0.1" in err and "kept in" in err
    out = tmp_path / "out"
    assert (out / f"greenwatch-{WEEK}.pdf").read_bytes().startswith(b"%PDF")
    assert (out / f"greenwatch-{WEEK}.eml").stat().st_size > 0
    assert PASSWORD not in err


def test_wrong_password_is_a_failed_send_not_a_crash(influxdb, influx_db, tmp_path, tls_files, smtp_server,
                                                     capsys) -> None:
    write_estate(influxdb, influx_db, make_estate())
    controller, mailbox = smtp_server
    config = write_config(tmp_path, influxdb, influx_db, controller.port, tls_files[0])
    (tmp_path / "smtp-password").write_text("wrong-password-xyz\n")

    assert main(["report", "--config", str(config), "--week", WEEK, "--send"]) == 4
    assert mailbox.messages == []
    err = capsys.readouterr().err
    assert "535" in err and "wrong-password-xyz" not in err


@pytest.mark.parametrize("args,config_extra,message", [
    (["--week", "2026-47"], "", "--week: expected an ISO week such as 2026-W47"),
    (["--week", "2026-W54"], "", "--week: expected an ISO week"),
])
def test_bad_week_exits_2(influxdb, influx_db, tmp_path, tls_files, capsys, args, config_extra, message) -> None:
    config = write_config(tmp_path, influxdb, influx_db, 25, tls_files[0], extra=config_extra)
    assert main(["report", "--config", str(config), *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("recipients,line,message", [
    ("    - {to: [officer@example.org], sites: [dc-9]}\n", 7, "report.recipients[0].sites[0]: no site 'dc-9'"),
    ("    - {to: [not-an-address]}\n", 7, "expected an email address"),
])
def test_bad_recipients_exit_2_with_file_and_line(influxdb, influx_db, tmp_path, tls_files, capsys, recipients,
                                                  line, message) -> None:
    config = write_config(tmp_path, influxdb, influx_db, 25, tls_files[0], recipients=recipients)
    assert main(["report", "--config", str(config), "--week", WEEK]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"greenwatch\.yaml:{line}: .*{re.escape(message)}", err), err


def test_influxdb_unreachable_is_a_clear_message_and_exit_1(tmp_path, tls_files, capsys) -> None:
    class Nowhere:  # an InfluxDB URL on a free port nobody listens on
        url = f"http://127.0.0.1:{free_tcp_port()}"

    config = write_config(tmp_path, Nowhere, "db", 25, tls_files[0])
    assert main(["report", "--config", str(config), "--week", WEEK]) == 1
    err = capsys.readouterr().err
    assert "cannot read the week's figures from InfluxDB" in err and Nowhere.url in err
    assert "Traceback" not in err
