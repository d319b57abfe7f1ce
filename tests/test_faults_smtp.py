"""An SMTP server that refuses mail, for `greenwatch report --send` (a real aiosmtpd
over STARTTLS with AUTH, and a real influxd with a week of data). 554 for every
message is tests/test_report_mail.py's; here: 451 (try again later) that clears,
and 550 for one of the recipients. Each time the report is kept on disk, every
refusal is logged with the server's reply, and the exit code says whether everyone
got it."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from realparts.ports import free_tcp_port
from test_report_mail import (  # the report tests' estate, config and SMTP parts, not copied
    PASSWORD,
    WEEK,
    _authenticator,
    make_estate,
    tls_files,  # noqa: F401 - the fixture
    write_config,
    write_estate,
)

from greenwatch.cli import main


class Refusing:
    """aiosmtpd handler: 451 to the first `busy` messages; 550 at RCPT for `unknown`
    addresses, 452 once for `full`; otherwise keeps what it receives."""

    def __init__(self, busy: int = 0, unknown: tuple[str, ...] = (), full: str | None = None) -> None:
        self.busy = busy
        self.unknown = unknown
        self.full = full  # 452 (mailbox full, for now) at its first RCPT
        self.attempts = 0
        self.messages: list[list[str]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address in self.unknown:
            return "550 5.1.1 no such mailbox here"
        if address == self.full:
            self.full = None
            return "452 4.2.2 mailbox full, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.attempts <= self.busy:
            return "451 4.3.0 try again later"
        self.messages.append(list(envelope.rcpt_tos))
        return "250 OK"


def serve(handler: Refusing, tls: tuple[Path, Path]) -> Controller:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls)
    controller = Controller(handler, hostname="127.0.0.1", port=free_tcp_port(), tls_context=context,
                            require_starttls=True, auth_required=True, auth_require_tls=True,
                            authenticator=_authenticator)
    controller.start()
    return controller


@pytest.fixture
def estate_db(influxdb, influx_db) -> Iterator[str]:
    write_estate(influxdb, influx_db, make_estate())
    yield influx_db


def report_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if re.search(r" (WARNING|ERROR) greenwatch\.report: ", line)]


def kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert (out / f"greenwatch-{WEEK}.pdf").read_bytes().startswith(b"%PDF")
    assert (out / f"greenwatch-{WEEK}.eml").stat().st_size > 0


def send_report(handler: Refusing, influxdb, estate_db: str, tmp_path: Path, tls: tuple[Path, Path]) -> int:
    """`greenwatch report --send` of the test week to a real SMTP server with `handler`."""
    controller = serve(handler, tls)
    try:
        config = write_config(tmp_path, influxdb, estate_db, controller.port, tls[0])
        return main(["report", "--config", str(config), "--week", WEEK, "--send"])
    finally:
        controller.stop()


def test_a_busy_server_is_retried_until_it_takes_the_report_once(influxdb, estate_db, tmp_path, tls_files, capsys):  # noqa: F811
    handler = Refusing(busy=2)
    assert send_report(handler, influxdb, estate_db, tmp_path, tls_files) == 0
    err = capsys.readouterr().err
    # Two refusals, each logged with the server's reply; the third attempt went through,
    # and each recipient has the report once.
    assert handler.attempts == 3
    assert handler.messages == [["officer@example.org", "cfo@example.org"]]
    warnings = report_lines(err)
    assert len(warnings) == 2 and all("451 4.3.0 try again later" in w and "retrying" in w for w in warnings), err
    kept(tmp_path)
    assert PASSWORD not in err


def test_a_refused_recipient_is_named_and_the_exit_says_not_everyone_got_it(influxdb, estate_db, tmp_path, tls_files,  # noqa: F811
                                                                          capsys):
    handler = Refusing(unknown=("cfo@example.org",))
    code = send_report(handler, influxdb, estate_db, tmp_path, tls_files)
    err = capsys.readouterr().err
    # The recipient the server knows got it, once; the refused one is named with the
    # server's reply (a permanent refusal: not retried), and the exit is 4.
    assert handler.messages == [["officer@example.org"]]
    assert handler.attempts == 1
    refused = [w for w in report_lines(err) if "cfo@example.org" in w]
    assert refused and all("550 5.1.1 no such mailbox here" in w for w in refused), err
    assert code == 4, err
    kept(tmp_path)


def test_a_recipient_put_off_is_tried_again_alone(influxdb, estate_db, tmp_path, tls_files, capsys):  # noqa: F811
    handler = Refusing(full="cfo@example.org")
    assert send_report(handler, influxdb, estate_db, tmp_path, tls_files) == 0
    err = capsys.readouterr().err
    # The second attempt went to the recipient put off only: nobody has it twice.
    assert handler.messages == [["officer@example.org"], ["cfo@example.org"]]
    [warning] = report_lines(err)
    assert "cfo@example.org" in warning and "452 4.2.2 mailbox full" in warning and "retrying" in warning
    kept(tmp_path)
