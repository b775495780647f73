"""Secrets at rest (webhook signing secrets, integration tokens): encrypted with the installation's key.

The key is ``CASEWORK_SECRET_KEY`` or, when that is unset, the file ``secret-key`` in ``CASEWORK_HOME``, made
(mode 0600) on first start. Every process of an installation must use the same key: the database keeps a
check value, and a process whose key does not open it refuses to start rather than fail later, one delivery at
a time. Encryption is Fernet (``cryptography``): AES-128-CBC with an HMAC-SHA256, authenticated.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.orm import Session

from casework.db.dialect import insert_ignoring_conflict
from casework.db.models import InstanceSetting

KEY_FILE = "secret-key"
_CHECK = "secret_key_check"
_CHECK_TEXT = "casework"


class SecretKeyMismatch(RuntimeError):
    """This process's key is not the key the database's secrets were sealed with."""


class SecretBox:
    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                "CASEWORK_SECRET_KEY must be 32 random bytes in URL-safe base64 (44 characters), as "
                "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'` "
                "prints."
            ) from exc

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str, ttl: int | None = None) -> str:
        """The plaintext; with ``ttl``, only if it was sealed at most that many seconds ago (else InvalidToken)."""
        return self._fernet.decrypt(sealed.encode(), ttl=ttl).decode()


def load_key(configured: str | None, home: Path) -> str:
    """The configured key, or the one in ``home``, made there first if there is none."""
    if configured:
        return configured
    path = home / KEY_FILE
    if path.exists():
        return path.read_text().strip()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Fernet.generate_key().decode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def check_key(session: Session, box: SecretBox) -> None:
    """Record the key's check value on first use; refuse a key that cannot open the recorded one."""
    insert_ignoring_conflict(
        session,
        InstanceSetting,
        {"name": _CHECK, "value": box.seal(_CHECK_TEXT)},
        conflict_columns=["name"],
    )
    stored = session.get_one(InstanceSetting, _CHECK).value
    try:
        if box.open(stored) == _CHECK_TEXT:
            return
    except InvalidToken:
        pass
    raise SecretKeyMismatch(
        "This process's secret key is not the one this database's secrets were sealed with. Every process "
        "sharing a database needs the same key: set CASEWORK_SECRET_KEY on each to the value of the first "
        "machine's CASEWORK_SECRET_KEY (or of its $CASEWORK_HOME/secret-key file)."
    )
