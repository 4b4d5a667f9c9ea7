"""The service's audit log in the gallery database: which key did what to which identity, when, and how it ended."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from metric.deploy.sqlite import SharedTable, transaction
from metric.errors import ConfigError

ACTIONS = ("enroll", "remove", "verify", "identify", "key_create", "key_revoke", "threshold")


def _plain(value: Any) -> Any:
    """json.dumps' fallback: numpy scalars become numbers; anything else (bytes, arrays: images) is refused."""
    if isinstance(value, (np.number, np.bool_)):
        return value.item()
    raise TypeError(
        f"audit detail holds a {type(value).__name__}: only JSON values (numbers, strings, booleans, "
        "lists, dicts) are logged, never images or raw bytes."
    )


class AuditLog(SharedTable):
    """The audit table of an open gallery connection (isolation_level=None; its timeout rides out a busy moment)."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY,
        at REAL,
        key_id TEXT,
        action TEXT,
        identity TEXT,
        outcome TEXT,
        detail TEXT
    )
    """

    def record(
        self, action: str, key_id: str | None, identity: str | None, outcome: str, detail: dict | None = None
    ) -> None:
        """Append one entry, in one short transaction."""
        if action not in ACTIONS:
            raise ConfigError(
                f"audit action {action!r} is not one of {', '.join(ACTIONS)}: use one of them, or add "
                "the new action to metric.deploy.service.audit.ACTIONS."
            )
        text = None if detail is None else json.dumps(detail, sort_keys=True, default=_plain)
        with transaction(self.db, self.lock):
            self.db.execute(
                "INSERT INTO audit (at, key_id, action, identity, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), key_id, action, identity, outcome, text),
            )

    def recent(self, limit: int = 100) -> list[dict]:
        """The newest `limit` entries, newest first, each a dict with its detail parsed back."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"audit limit={limit!r} must be a positive integer, e.g. 100.")
        with self.lock:
            rows = self.db.execute(
                "SELECT id, at, key_id, action, identity, outcome, detail FROM audit ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        columns = ("id", "at", "key_id", "action", "identity", "outcome", "detail")
        entries = [dict(zip(columns, row)) for row in rows]
        for entry in entries:
            entry["detail"] = None if entry["detail"] is None else json.loads(entry["detail"])
        return entries
