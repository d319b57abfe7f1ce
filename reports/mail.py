"""The report as an email (multipart: text and HTML alternatives, the charts as
content-id images related to the HTML, the PDF and the findings CSV attached), and
sending it over SMTP with STARTTLS or implicit TLS and auth (aiosmtplib), retried.

The SMTP password is a Secret: it is handed to aiosmtplib and never formatted into a
log line or an error."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid

import aiosmtplib

from .config import SmtpConfig
from .render import Rendered, cid

log = logging.getLogger("greenwatch.report")


class SendError(Exception):
    """Every attempt to send failed; the message says why (no secrets in it)."""


def build_message(report: Rendered, sender: str, to: Sequence[str], subject: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject or f"greenwatch weekly report {report.figures.week.label}"
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1] if "@" in sender else None)
    msg.set_content(report.text)
    msg.add_alternative(report.html_cid, subtype="html")
    html_part = msg.get_payload()[1]
    for chart, png in report.images.items():
        # Content-ID in angle brackets; the HTML refers to it as cid:<id> without them.
        html_part.add_related(png, "image", "png", cid=f"<{cid(chart)}>", filename=report.image_file(chart),
                              disposition="inline")
    msg.add_attachment(report.pdf, "application", "pdf", filename=f"{report.name}.pdf")
    msg.add_attachment(report.csv.encode("utf-8"), "text", "csv", filename=f"{report.name}-findings.csv")
    return msg


def _tls_context(cfg: SmtpConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
    if not cfg.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def send_once(msg: EmailMessage, cfg: SmtpConfig, recipients: Sequence[str] | None = None) -> dict[str, str]:
    """Send to `recipients` (default: the message's To); returns the recipients the
    server refused while it took the message for the others: {address: its reply}."""
    refused, _ = await aiosmtplib.send(
        msg, recipients=recipients, hostname=cfg.host, port=cfg.port,
        username=cfg.username, password=cfg.password.get_secret_value() if cfg.password else None,
        use_tls=cfg.security == "tls", start_tls=cfg.security == "starttls",
        tls_context=_tls_context(cfg) if cfg.security != "none" else None,
        timeout=cfg.timeout)
    return {address: f"{reply.code} {reply.message}" for address, reply in refused.items()}


def _why(exc: BaseException) -> str:
    # aiosmtplib's errors carry the server's reply, never the credentials sent.
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    return f"{type(exc).__name__}: {exc}"


async def send(msg: EmailMessage, cfg: SmtpConfig) -> int:
    """Send, trying `cfg.attempts` times `cfg.retry_delay` apart; returns the attempts
    used. Raises SendError when every attempt failed."""
    where = f"{cfg.host}:{cfg.port} ({cfg.security})"
    pending: list[str] | None = None  # None: everyone in To; else those a 4xx put off
    undelivered: dict[str, str] = {}  # refused for good (5xx)
    for attempt in range(1, cfg.attempts + 1):
        try:
            refused = await send_once(msg, cfg, pending)
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            if attempt == cfg.attempts:
                log.error("sending the report to %s failed (attempt %d of %d): %s; giving up",
                          where, attempt, cfg.attempts, _why(exc))
                raise SendError(f"could not send the report via {where} after {attempt} attempts: {_why(exc)}") from None
            log.warning("sending the report to %s failed (attempt %d of %d): %s; retrying in %.0f s",
                        where, attempt, cfg.attempts, _why(exc), cfg.retry_delay)
            await asyncio.sleep(cfg.retry_delay)
        else:
            # The server took the message but refused some recipients: each is named;
            # a temporary refusal (4xx) is tried again for those recipients alone.
            for address, reply in refused.items():
                if reply.startswith("4") and attempt < cfg.attempts:
                    log.warning("the server put off the report for %s (attempt %d of %d): %s; retrying",
                                address, attempt, cfg.attempts, reply)
                else:
                    log.error("the report was not delivered to %s: the server refused it: %s", address, reply)
                    undelivered[address] = reply
            delivered = [a for a in (pending if pending is not None else _addresses(msg)) if a not in refused]
            if delivered:
                log.info("report sent via %s to %s", where, ", ".join(delivered))
            pending = [a for a in refused if a not in undelivered]
            if not pending:
                break
            await asyncio.sleep(cfg.retry_delay)
    if undelivered:
        names = "; ".join(f"{address}: {reply}" for address, reply in undelivered.items())
        raise SendError(f"the report was not delivered to every recipient via {where}: {names}")
    return attempt


def _addresses(msg: EmailMessage) -> list[str]:
    return [address for _, address in getaddresses(msg.get_all("To", []))]
