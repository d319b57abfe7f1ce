"""Logging for every greenwatch command: plain text (the default) or JSON lines.

Each record carries who it is about (site, device, rule): from the code's
`extra=` or, failing that, from greenwatch.core.logcontext (set while a device is
polled). The JSON format emits them as keys; the text format leaves the line as
it was (the messages already name `site/device`), so greps of it keep working."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Literal

from greenwatch.core.logcontext import SUBJECT_KEYS, current

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class SubjectFilter(logging.Filter):
    """Copy the running code's subject into the record (keys given by `extra=` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, RFC 3339), level, logger, message, the
    subject keys present, and the traceback text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in SUBJECT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """(Re)configure the root logger on stderr; called again once the config is read
    if it asks for another format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SubjectFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # APScheduler logs every job start at INFO: too chatty for thousands of devices.
    # The report's libraries log their font and cache searches at DEBUG: noise in a
    # service's log, whatever greenwatch's own level.
    for name in ("apscheduler", "matplotlib", "PIL", "fontTools"):
        logging.getLogger(name).setLevel(logging.WARNING)
