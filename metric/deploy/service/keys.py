"""The service's API keys, kept in the gallery database as sha256 hashes: create, check, list, revoke."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from metric.deploy.sqlite import SharedTable, transaction
from metric.errors import ConfigError

SCOPES = ("verify", "enroll", "admin")  # ordered: a key allows every action at or below its scope
PREFIX = "mf_"
KEY_PATTERN = re.compile(r"mf_[A-Za-z0-9_-]{43}")  # "mf_" + secrets.token_urlsafe(32)


def allows(key_scope: str, needed: str) -> bool:
    """Whether a key of `key_scope` may do an action that needs `needed` (verify < enroll < admin)."""
    if needed not in SCOPES:
        raise ConfigError(f"scope {needed!r} is not one of {', '.join(SCOPES)}.")
    return key_scope in SCOPES and SCOPES.index(key_scope) >= SCOPES.index(needed)


def hash_key(key: str) -> str:
    """The stored form of a key: its sha256, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """What the database knows of a key: never the key itself."""

    key_id: str
    scope: str
    label: str | None
    created_at: float
    revoked_at: float | None  # None while the key is active

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class KeyStore(SharedTable):
    """The api_keys table of an open gallery connection (isolation_level=None: explicit transactions).

    A key is shown once, when it is created; the database holds only its hash and a short public id (8 random hex
    characters drawn apart from the secret) by which a key is listed and revoked without the secret."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS api_keys (
        key_id TEXT PRIMARY KEY,
        key_hash TEXT UNIQUE NOT NULL,
        scope TEXT NOT NULL,
        label TEXT,
        created_at REAL NOT NULL,
        revoked_at REAL
    )
    """

    def create(self, scope: str, label: str | None = None) -> tuple[str, KeyRecord]:
        """A new key of `scope`: (the key, shown this once, and its record)."""
        if scope not in SCOPES:
            raise ConfigError(
                f"API key scope {scope!r} is not one of {', '.join(SCOPES)}: verify may match, list and "
                "inspect, enroll may also enroll, admin may also remove identities."
            )
        with transaction(self.db, self.lock):
            key = PREFIX + secrets.token_urlsafe(32)
            while True:  # a clash of 8-character ids is unlikely, but the id must name one key
                key_id = secrets.token_hex(
                    4
                )  # drawn apart from the secret: the id, shown and logged, reveals none of it
                if self.db.execute("SELECT 1 FROM api_keys WHERE key_id = ?", (key_id,)).fetchone() is None:
                    break
            record = KeyRecord(key_id, scope, label, time.time(), None)
            self.db.execute(
                "INSERT INTO api_keys (key_id, key_hash, scope, label, created_at, revoked_at) "
                "VALUES (?, ?, ?, ?, ?, NULL)",
                (key_id, hash_key(key), scope, label, record.created_at),
            )
        return key, record

    def check(self, key: str | None) -> KeyRecord | None:
        """The record of an active key; None for a missing, malformed, unknown or revoked one."""
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            return None
        digest = hash_key(key)
        with self.lock:
            row = self.db.execute(
                "SELECT key_hash, key_id, scope, label, created_at, revoked_at FROM api_keys WHERE key_hash = ?",
                (digest,),
            ).fetchone()
        if row is None or not hmac.compare_digest(row[0], digest) or row[5] is not None:
            return None
        return KeyRecord(*row[1:])

    def valid(self, key: str | None) -> bool:
        """Whether `key` is an active key (of any scope)."""
        return self.check(key) is not None

    def list(self) -> list[KeyRecord]:
        """Every key, revoked ones included (their revoked_at set), oldest first."""
        with self.lock:
            rows = self.db.execute(
                "SELECT key_id, scope, label, created_at, revoked_at FROM api_keys ORDER BY created_at, key_id"
            ).fetchall()
        return [KeyRecord(*row) for row in rows]

    def revoke(self, key_id: str) -> None:
        """Revoke the active key with this public id, in one transaction."""
        with transaction(self.db, self.lock):
            changed = self.db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (time.time(), key_id)
            ).rowcount
            if changed == 0:
                raise ConfigError(
                    f"no active API key has the id {key_id!r} (unknown, or already revoked): list the "
                    "keys to see their ids."
                )
