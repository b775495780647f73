"""The access log without secrets: a one-time sign-in link's token (``/login?token=...``) is as good as a
password until it is used, so query strings are logged with their values redacted."""

from __future__ import annotations

import logging
import re
from typing import Any

_VALUE = re.compile(r"=[^&]*")


def redact_query(path: str) -> str:
    """``/login?token=abc&next=/x`` -> ``/login?token=…&next=…``: the parameter names stay, for debugging."""
    route, mark, query = path.partition("?")
    return route + mark + _VALUE.sub("=…", query) if mark else path


class RedactQueryStrings(logging.Filter):
    """For uvicorn's access logger, whose records carry (client, method, path, http version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration, with :class:`RedactQueryStrings` on the access log. Passed by import
    path, so every worker process of ``casework serve --workers N`` sets it up too."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = {**LOGGING_CONFIG, "filters": {"redact": {"()": RedactQueryStrings}}}
    config["handlers"] = {name: dict(handler) for name, handler in LOGGING_CONFIG["handlers"].items()}
    config["handlers"]["access"]["filters"] = ["redact"]
    return config
