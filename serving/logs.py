"""Log lines: readable text on a terminal, or one JSON object per line for a log pipeline
(`PETITIONS_LOG_FORMAT=json`). Either way no email address reaches them: every message and
traceback is scrubbed, whoever logged it (uvicorn's access log prints query strings; Tortoise
prints SQL parameters at DEBUG)."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

# An address as people write it, and as a query string carries it (@ encoded as %40). The
# local part is taken as letters, digits and ".+-_" (what addresses hold in practice): wider, it
# would swallow the URL before it; after a %-escape its first two digits go with it.
_EMAIL = re.compile(r"[\w.+-]+(?:@|%40)[\w-]+(?:\.[\w-]+)+", re.ASCII)
HIDDEN = "[email]"


def scrub(text: str) -> str:
    """`text` with every email address replaced by `[email]`."""
    return _EMAIL.sub(HIDDEN, text) if "@" in text or "%40" in text else text


class TextLines(logging.Formatter):
    """`LEVEL logger: message`, scrubbed."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class JsonLines(logging.Formatter):
    """One JSON object per record, on one line: time (UTC), level, logger, message, and the
    traceback when there is one; scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        if record.exc_info:
            line["exception"] = scrub(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = scrub(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False)


FORMATTERS = {"text": TextLines, "json": JsonLines}


def log_config(log_format: str, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for the whole process, uvicorn's loggers included (also
    given to uvicorn, which would otherwise install its own): one handler, on standard error."""
    formatter = f"{__name__}.{FORMATTERS[log_format].__name__}"
    handler = {"class": "logging.StreamHandler", "formatter": "lines", "stream": "ext://sys.stderr"}
    own = {"handlers": ["stderr"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"lines": {"()": formatter}},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {name: own for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }
