"""Waking workers in other processes, on PostgreSQL: a commit that queued work sends ``NOTIFY`` on one channel
(delivered when, and only if, the transaction commits), and each process that has a worker keeps one connection
of its own ``LISTEN``-ing on it. So a decision taken through any API process starts its memory pass and webhook
deliveries in whichever worker is free at once, on any machine, instead of at that worker's next poll; the poll
(``CASEWORK_WORKER_POLL_SECONDS``) stays as the fallback for the moments the listening connection is down.

The listener reconnects by itself, with backoff, and after each (re)connection tells its process to look once,
for what was committed while nobody listened. It needs a direct connection: a pooler in transaction mode
(PgBouncer's default) does not carry ``LISTEN``, and workers behind one fall back to polling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

CHANNEL = "casework_new_work"
# How often the listening thread looks up from waiting, to see whether it was asked to stop.
_LOOK_UP_SECONDS = 1.0
_MAX_BACKOFF_SECONDS = 30.0

log = logging.getLogger(__name__)


class Listener:
    """A thread holding one ``LISTEN`` connection; calls ``on_notify`` (from that thread) for each notification
    from another process (``origin`` names this one: its own commits tell it directly) and once after each
    reconnection."""

    def __init__(
        self, conninfo: str, connect_args: dict[str, Any], on_notify: Callable[[], None], *, origin: str
    ) -> None:
        self._origin = origin
        self._conninfo = conninfo
        # How the connection shows in pg_stat_activity: which process's worker listens there.
        self.application_name = f"casework-listen-{origin}"
        self._connect_args = {**connect_args, "application_name": self.application_name}
        self._on_notify = on_notify
        self._stopping = threading.Event()
        self.listening = threading.Event()  # set while the LISTEN connection is up (tests wait on it)
        self._thread = threading.Thread(target=self._run, name="casework-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=_LOOK_UP_SECONDS * 3)

    def _run(self) -> None:
        backoff = 1.0
        connected_before = False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, **self._connect_args) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    backoff = 1.0
                    if connected_before:
                        self._tell()  # what was committed while nobody listened
                    connected_before = True
                    while not self._stopping.is_set():
                        for notification in connection.notifies(timeout=_LOOK_UP_SECONDS):
                            if notification.payload != self._origin:
                                self._tell()
            except psycopg.Error as error:
                self.listening.clear()
                if self._stopping.is_set():
                    return
                log.warning("listening for new work failed (%s); polling until it is back", error)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
        self.listening.clear()

    def _tell(self) -> None:
        try:
            self._on_notify()
        except Exception:  # a listener's own failure must not end the listening
            log.exception("a new-work listener failed")


def conninfo_of(url: Any) -> str:
    """A libpq connection string for psycopg from a SQLAlchemy URL (``postgresql+psycopg://...``)."""
    return str(url.set(drivername="postgresql").render_as_string(hide_password=False))


def notify_new_work(session: Any, *, origin: str) -> None:
    """Send the notification, from the process ``origin`` names, in the session's transaction: PostgreSQL
    delivers it at commit, never on rollback (and once per transaction, however many times it was sent)."""
    session.connection().exec_driver_sql(
        "SELECT pg_notify(%(channel)s, %(origin)s)", {"channel": CHANNEL, "origin": origin}
    )
