"""``--log.level`` and ``--log.format logfmt|json``: the exporters log as Prometheus's own do.

A logfmt line (go-kit's field names, so one log pipeline parses ours and node_exporter's)::

    ts=2026-12-05T12:00:00.123Z level=warn logger=medobs.exporter msg="NVML: timeout error: no answer within 9.5s"

and the same in JSON::

    {"ts": "2026-12-05T12:00:00.123Z", "level": "warn", "logger": "medobs.exporter", "msg": "NVML: ..."}
"""

from __future__ import annotations

import argparse
import json
import logging
import time

#: The levels as the flag names them, node_exporter's four.
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
FORMATS = ("logfmt", "json")


def _fields(record: logging.LogRecord) -> dict[str, str]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
    level = {"warning": "warn", "critical": "error"}.get(record.levelname.lower(), record.levelname.lower())
    fields = {"ts": stamp, "level": level, "logger": record.name, "msg": record.getMessage()}
    if record.exc_info:
        fields["err"] = logging.Formatter().formatException(record.exc_info)
    return fields


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' ="\\\n\t'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


class LogfmtFormatter(logging.Formatter):
    """One ``key=value`` line a record; values with spaces, quotes or newlines quoted."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object a record."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log.level", dest="log_level", choices=list(LEVELS), default=None,
        help="only log messages of this level or above (default: info, debug with medobs -v)",
    )
    parser.add_argument(
        "--log.format", dest="log_format", choices=FORMATS, default="logfmt",
        help="how log lines are written to stderr (default: %(default)s)",
    )


def configure(level: str | None, format: str) -> None:
    """Replace the root logger's handlers with one writing ``format`` to stderr at ``level``
    (None keeps the level ``medobs -v`` chose)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if format == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if type(h) is logging.StreamHandler]:  # basicConfig's, not pytest's
        root.removeHandler(old)
    root.addHandler(handler)
    if level is not None:
        root.setLevel(LEVELS[level])
