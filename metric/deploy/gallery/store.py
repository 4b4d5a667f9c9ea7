"""The gallery file: one SQLite database (WAL) of identities and templates, the model fingerprint, matcher and
threshold.

Each identity's template is kept as the sum of its image embeddings and their count, so enrolling more
images later updates the mean exactly; the searchable template is that sum, normalised. Every change is
one transaction: a killed process leaves each identity either fully enrolled or absent. One store may be used
from several threads (the service's workers): its connection is shared under a lock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metric.deploy.sqlite import transaction
from metric.errors import ConfigError

FORMAT_VERSION = 1
STORAGES = ("float32", "float16", "int8")
INDEXES = ("exact", "hnsw", "ivf")  # the search index a gallery records (metric.deploy.gallery.search builds it)
MAX_NAME = 128
NAME_SEPARATORS = " ._-'@"
NAME_RULE = (
    f"an identity name is 1-{MAX_NAME} characters after Unicode NFC normalisation: letters, digits and the "
    f"separators space . _ - ' @; it starts with a letter or a digit, does not end with a space, holds no two "
    "spaces in a row, and no control, format (zero-width, direction override), slash or other character"
)


def normal_name(name: str) -> str:
    """A name looked up as stored: in NFC (enrollment stores names so)."""
    return unicodedata.normalize("NFC", name) if isinstance(name, str) else name


class IdentityExists(ConfigError):
    """An enrollment that may only create identities met one that exists."""


def identity_name(name: object) -> str:
    """The name in NFC, or ConfigError quoting NAME_RULE: one rule for the command line and the service, so that
    names that look alike (a trailing zero-width space, a direction override) cannot sit side by side."""
    normal = unicodedata.normalize("NFC", name) if isinstance(name, str) else ""
    allowed = all(
        unicodedata.category(c)[0] in "LM" or unicodedata.category(c) == "Nd" or c in NAME_SEPARATORS for c in normal
    )
    if not (
        allowed
        and 1 <= len(normal) <= MAX_NAME
        and unicodedata.category(normal[0]) in ("Lu", "Ll", "Lt", "Lm", "Lo", "Nd")
        and not normal.endswith(" ")
        and "  " not in normal
    ):
        raise ConfigError(f"identity name {name!r} is refused: {NAME_RULE}.")
    return normal


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS identities (
    id INTEGER PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    image_count INTEGER NOT NULL,
    embedding_sum BLOB NOT NULL,
    enrolled_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class GalleryInfo:
    path: str
    format_version: int
    checkpoint: str
    fingerprint: str
    matcher: str
    threshold: float
    embedding_dim: int
    storage: str
    index: str
    identities: int
    images: int
    liveness: str  # the liveness checkpoint guarding enrollment (and, by default, matching), with its sha256


class GalleryStore:
    """Open (or create, with `create=...` settings) a gallery database."""

    def __init__(self, path: str | Path, create: dict | None = None):
        self.path = Path(path)
        if not self.path.exists() and create is None:
            raise ConfigError(f"gallery {str(self.path)!r} does not exist; create it with `enroll --ckpt ...`.")
        if not self.path.exists():  # templates and key hashes: readable by the owner only (SQLite gives its WAL and
            try:  # shared-memory files the database file's permissions)
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except OSError as error:
                raise ConfigError(f"cannot create the gallery {str(self.path)!r}: {error.strerror}.") from None
        try:
            # explicit transactions; shared by threads under self.lock
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self.lock = threading.RLock()
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError:
            raise ConfigError(f"{self.path} is not a gallery (not an SQLite database).") from None
        if not tables and create is not None:
            self.initialise(create)
        elif "meta" not in tables or "identities" not in tables:
            raise ConfigError(f"{self.path} is an SQLite file but not a gallery (no meta/identities tables).")
        self.meta = dict(self.db.execute("SELECT key, value FROM meta"))
        version = int(self.meta.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise ConfigError(
                f"{self.path} has gallery format version {version}, newer than this version reads ({FORMAT_VERSION}); "
                "upgrade metric-faces."
            )

    @staticmethod
    def is_blank(path: Path) -> bool:
        """An empty file, or an SQLite database with no tables: a gallery whose creation was killed before its
        first commit (the schema and settings are one transaction), safe to create anew."""
        if path.stat().st_size == 0:
            return True
        with open(path, "rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                return False
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                return db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
            finally:
                db.close()
        except sqlite3.DatabaseError:
            return False

    def initialise(self, settings: dict) -> None:
        if settings.get("storage", "float32") not in STORAGES:
            raise ConfigError(f"--storage {settings['storage']!r} is not one of {', '.join(STORAGES)}.")
        with self.transaction():
            for statement in SCHEMA.strip().split(";"):
                if statement.strip():
                    self.db.execute(statement)
            rows = {"format_version": FORMAT_VERSION, "storage": "float32", "index": "exact", **settings}
            self.db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in rows.items()])

    def transaction(self):
        return transaction(self.db, self.lock)

    def data_version(self) -> int:
        """SQLite's counter of commits by other connections: a change means another process changed the gallery."""
        with self.lock:
            return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    # writing ---------------------------------------------------------------------------------------------
    def enroll_many(
        self,
        batch: Iterable[tuple[str, np.ndarray, int]],
        replace: bool = False,
        create_only: bool = False,
        also: Callable[[], None] | None = None,
    ) -> int:
        """(name, embedding sum, image count) rows in ONE transaction; an existing identity gets the new images
        added (or, with replace, its template replaced); with create_only, an existing one refuses the whole batch
        (IdentityExists). `also` runs inside the same transaction (the service's audit row). Returns the rows
        written."""
        now = time.time()
        rows = [(identity_name(name), np.asarray(total, np.float32), int(n)) for name, total, n in batch]
        with self.transaction():
            if create_only:
                taken = self._sums([name for name, _, _ in rows])
                if taken:
                    raise IdentityExists(
                        f"identity {sorted(taken)[0]!r} is already enrolled in {self.path}; adding "
                        "images to it or replacing it is an admin action."
                    )
            existing = {} if replace else self._sums([name for name, _, _ in rows])
            for name, total, n in rows:  # a name twice in one batch adds up too
                if name in existing:
                    old_sum, old_n = existing[name]
                    total, n = total + old_sum, n + old_n
                existing[name] = (total, n)
            merged = [(name, n, total.astype(np.float32).tobytes(), now, now) for name, (total, n) in existing.items()]
            self.db.executemany(
                "INSERT INTO identities (name, image_count, embedding_sum, enrolled_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET image_count=excluded.image_count, "
                "embedding_sum=excluded.embedding_sum, updated_at=excluded.updated_at",
                merged,
            )
            if also is not None:
                also()
        return len(rows)

    def remove(self, name: str, also: Callable[[], None] | None = None) -> None:
        """Delete one identity; `also` runs inside the same transaction."""
        with self.transaction():
            if self.db.execute("DELETE FROM identities WHERE name = ?", (normal_name(name),)).rowcount == 0:
                raise ConfigError(f"identity {name!r} is not enrolled in {self.path}.")
            if also is not None:
                also()

    # reading ---------------------------------------------------------------------------------------------
    def sums(self, names: list[str]) -> dict[str, tuple[np.ndarray, int]]:
        with self.lock:
            return self._sums(names)

    def _sums(self, names: list[str]) -> dict[str, tuple[np.ndarray, int]]:
        out = {}
        for start in range(0, len(names), 500):
            chunk = names[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for name, blob, n in self.db.execute(
                f"SELECT name, embedding_sum, image_count FROM identities WHERE name IN ({marks})", chunk
            ):
                out[name] = (np.frombuffer(blob, np.float32), n)
        return out

    def template(self, name: str) -> np.ndarray:
        name = normal_name(name)
        found = self.sums([name])
        if name not in found:
            raise ConfigError(f"identity {name!r} is not enrolled in {self.path}.")
        total = found[name][0]
        return total / (np.linalg.norm(total) + 1e-12)

    def templates(self) -> tuple[list[str], np.ndarray]:
        """Every identity's normalised template, in enrollment order."""
        names, rows = [], []
        with self.lock:
            found = self.db.execute("SELECT name, embedding_sum FROM identities ORDER BY id").fetchall()
        for name, blob in found:
            names.append(name)
            rows.append(np.frombuffer(blob, np.float32))
        dim = int(self.meta["embedding_dim"])
        matrix = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
        return names, matrix / (np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-12)

    def entry(self, name: str) -> tuple[str, int, float] | None:
        """One identity's (name, image count, enrollment time), or None when it is not enrolled: one indexed lookup."""
        with self.lock:
            return self.db.execute(
                "SELECT name, image_count, enrolled_at FROM identities WHERE name = ?", (normal_name(name),)
            ).fetchone()

    def list(self) -> list[tuple[str, int, float]]:
        with self.lock:
            return list(self.db.execute("SELECT name, image_count, enrolled_at FROM identities ORDER BY name"))

    def info(self) -> GalleryInfo:
        with self.lock:
            count, images = self.db.execute("SELECT COUNT(*), COALESCE(SUM(image_count), 0) FROM identities").fetchone()
        m = self.meta
        guard = f"{m['liveness']} (sha256 {m['liveness_sha256'][:12]}...)" if m.get("liveness") else "none"
        return GalleryInfo(
            str(self.path),
            int(m["format_version"]),
            m["checkpoint"],
            m["fingerprint"],
            m["matcher"],
            float(m["threshold"]),
            int(m["embedding_dim"]),
            m["storage"],
            m["index"],
            count,
            images,
            guard,
        )

    def set_meta(self, settings: dict) -> None:
        """Add or change gallery settings, in one transaction."""
        with self.transaction():
            self.db.executemany(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                [(k, str(v)) for k, v in settings.items()],
            )
        self.meta.update({k: str(v) for k, v in settings.items()})

    def close(self) -> None:
        self.db.close()
