"""Service parts without HTTP: API keys stored as hashes, the audit log, bounded content-checked image uploads."""

import hashlib
import sqlite3
import struct
import threading
import time
import warnings
import zlib
from io import BytesIO

import numpy as np
import pytest
from PIL import Image, ImageFile

from metric.deploy.service.audit import AuditLog
from metric.deploy.service.keys import SCOPES, KeyStore, allows, transaction
from metric.deploy.service.uploads import UploadError, UploadLimits, check_file_count, decode_upload
from metric.errors import ConfigError


@pytest.fixture
def db(tmp_path):
    """A connection opened as the gallery opens its file: WAL, explicit transactions."""
    connection = sqlite3.connect(tmp_path / "g.db", timeout=5, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    yield connection
    connection.close()


def database_bytes(tmp_path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(tmp_path.glob("g.db*")))


# API keys -------------------------------------------------------------------------------------------------------
def test_key_is_shown_once_and_only_its_hash_is_stored(db, tmp_path):
    key, record = KeyStore(db).create("enroll", label="front desk")
    assert key.startswith("mf_") and len(key) == 46
    assert record.key_id not in key and record.scope == "enroll" and record.label == "front desk"
    assert record.revoked_at is None and not record.revoked
    rows = db.execute("SELECT * FROM api_keys").fetchall()
    assert len(rows) == 1
    assert hashlib.sha256(key.encode()).hexdigest() in rows[0]
    assert not any(isinstance(value, str) and key[3:] in value for value in rows[0])
    for stage in ("open", "closed"):  # in the WAL file while open, in the main file after the checkpoint on close
        stored = database_bytes(tmp_path)
        assert key[3:].encode() not in stored and key[11:].encode() not in stored, stage
        assert record.key_id.encode() in stored, stage  # the public id is kept: the check above can see stored text
        db.close()


def test_check_accepts_the_key_and_refuses_everything_else(db):
    keys = KeyStore(db)
    key, record = keys.create("verify")
    other, _ = keys.create("admin")
    assert keys.check(key) == record
    assert keys.check(other).scope == "admin"
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    for bad in (
        None,
        "",
        "mf_",
        key[:-1],
        key + "x",
        " " + key,
        key.upper(),
        "Bearer " + key,
        wrong,
        "mf_" + "A" * 43,
        key[3:],
    ):
        assert keys.check(bad) is None, bad
    keys.revoke(record.key_id)
    assert keys.check(key) is None
    assert keys.check(other) is not None  # only the revoked key stops working


def test_keys_persist_and_table_creation_is_idempotent(db, tmp_path):
    key, record = KeyStore(db).create("admin")
    db.close()
    reopened = sqlite3.connect(tmp_path / "g.db", isolation_level=None)
    try:
        assert KeyStore(reopened).check(key) == record
        assert KeyStore(reopened).list() == [record]
    finally:
        reopened.close()


def test_scopes_are_ordered():
    assert SCOPES == ("verify", "enroll", "admin")
    granted = {(have, need) for have in SCOPES for need in SCOPES if allows(have, need)}
    assert granted == {
        ("verify", "verify"),
        ("enroll", "verify"),
        ("enroll", "enroll"),
        ("admin", "verify"),
        ("admin", "enroll"),
        ("admin", "admin"),
    }
    assert not allows("root", "verify")  # a scope the table should never hold allows nothing
    with pytest.raises(ConfigError, match="verify, enroll, admin"):
        allows("admin", "superuser")


def test_bad_scope_names_the_allowed_ones(db):
    keys = KeyStore(db)
    with pytest.raises(ConfigError, match="'owner' is not one of verify, enroll, admin"):
        keys.create("owner")
    assert keys.list() == []


def test_list_flags_revoked_keys_and_revoke_refuses_unknown_ids(db):
    keys = KeyStore(db)
    _, first = keys.create("verify", "kiosk")
    _, second = keys.create("enroll")
    keys.revoke(first.key_id)
    listed = {record.key_id: record for record in keys.list()}
    assert set(listed) == {first.key_id, second.key_id}
    assert listed[first.key_id].revoked and listed[first.key_id].revoked_at is not None
    assert listed[first.key_id].label == "kiosk"
    assert not listed[second.key_id].revoked and listed[second.key_id].revoked_at is None
    with pytest.raises(ConfigError, match="no active API key has the id 'nosuchid'"):
        keys.revoke("nosuchid")
    with pytest.raises(ConfigError, match="already revoked"):
        keys.revoke(first.key_id)


def test_threads_share_one_connection_under_one_lock(tmp_path):
    """As the service shares the gallery's connection: KeyStore(store.db, store.lock), AuditLog(same)."""
    db = sqlite3.connect(tmp_path / "g.db", timeout=5, isolation_level=None, check_same_thread=False)
    lock = threading.RLock()
    keys, log, failures = KeyStore(db, lock), AuditLog(db, lock), []

    def work(worker: int) -> None:
        try:
            for step in range(10):
                key, record = keys.create("verify", f"worker {worker}")
                log.record("key_create", record.key_id, None, "ok", {"step": step})
                with transaction(db, lock):  # the gallery's own writes take the same lock
                    db.execute("CREATE TABLE IF NOT EXISTS other (worker INTEGER)")
                    db.execute("INSERT INTO other VALUES (?)", (worker,))
                assert keys.check(key) == record and log.recent(1)
        except Exception as error:  # "cannot start a transaction within a transaction" without the shared lock
            failures.append(error)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    try:
        assert failures == []
        assert len(keys.list()) == 40 and len(log.recent(1000)) == 40
        assert db.execute("SELECT COUNT(*) FROM other").fetchone() == (40,)
    finally:
        db.close()


def test_a_failed_write_leaves_nothing(db):
    lock = threading.RLock()
    with pytest.raises(RuntimeError):
        with transaction(db, lock):
            db.execute("CREATE TABLE t (x INTEGER)")
            raise RuntimeError("killed halfway")
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchone() is None
    assert lock.acquire(blocking=False)  # released


# audit log ------------------------------------------------------------------------------------------------------
def test_audit_round_trip_newest_first(db):
    log = AuditLog(db)
    log.record("enroll", "abcd1234", "alice", "ok", {"images": 2})
    log.record(
        "verify",
        "abcd1234",
        "alice",
        "accepted",
        {"score": np.float32(0.75), "threshold": 0.5, "accepted": np.bool_(True), "liveness": {"live": True}},
    )
    log.record("remove", None, "bob", "not_found")
    entries = log.recent()
    assert [entry["action"] for entry in entries] == ["remove", "verify", "enroll"]
    assert entries[0]["detail"] is None and entries[0]["key_id"] is None and entries[0]["outcome"] == "not_found"
    assert entries[1]["detail"] == {"score": 0.75, "threshold": 0.5, "accepted": True, "liveness": {"live": True}}
    assert entries[1]["identity"] == "alice" and entries[1]["key_id"] == "abcd1234"
    assert entries[0]["at"] >= entries[2]["at"] > time.time() - 60
    assert [entry["action"] for entry in log.recent(limit=1)] == ["remove"]
    with pytest.raises(ConfigError, match="positive integer"):
        log.recent(limit=0)


def test_audit_refuses_images_and_unknown_actions(db):
    log = AuditLog(db)
    with pytest.raises(TypeError, match="never images"):
        log.record("verify", "k", "alice", "accepted", {"probe": np.zeros((4, 4, 3), np.uint8)})
    with pytest.raises(TypeError, match="never images"):
        log.record("verify", "k", "alice", "accepted", {"probe": b"\xff\xd8"})
    with pytest.raises(ConfigError, match="not one of enroll, remove"):
        log.record("verfiy", "k", "alice", "accepted")
    assert log.recent() == []


def test_audit_waits_out_a_busy_moment(db, tmp_path):
    log = AuditLog(db)
    other = sqlite3.connect(tmp_path / "g.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process is writing
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        log.record("identify", "k", None, "unknown")  # waits (connection timeout 5 s) instead of failing
    finally:
        release.join()
        other.close()
    assert log.recent()[0]["action"] == "identify"


# uploads --------------------------------------------------------------------------------------------------------
def encode(image: Image.Image, kind: str, **options) -> bytes:
    buffer = BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def noise(width: int, height: int, mode: str = "RGB") -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG that claims width x height 1-bit pixels (its pixel data is a stub: decoding it would fail)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


def refused(data: bytes, filename: str | None = "face.png", channels: int = 3, limits=UploadLimits()) -> UploadError:
    with pytest.raises(UploadError) as caught:
        decode_upload(data, filename, channels, limits)
    assert str(caught.value) == caught.value.message
    return caught.value


@pytest.mark.parametrize(
    "kind, mode, channels, name",
    [
        ("PNG", "RGB", 3, "a.png"),
        ("PNG", "RGBA", 3, "a.png"),
        ("JPEG", "RGB", 3, "a.jpg"),
        ("JPEG", "RGB", 1, "a.jpg"),
        ("PPM", "L", 1, "a.pgm"),
        ("PPM", "L", 3, "a.pgm"),
        ("WEBP", "RGB", 3, None),
        ("BMP", "RGB", 3, "a.bmp"),
    ],
)
def test_images_decode_to_uint8_with_the_channels_asked(kind, mode, channels, name):
    image = noise(20, 12, mode)
    array = decode_upload(encode(image, kind), name, channels, UploadLimits())
    assert array.dtype == np.uint8 and array.shape == (12, 20, channels)
    if kind in ("PNG", "PPM") and mode != "RGBA":  # lossless: the pixels themselves come back
        expected = np.asarray(image.convert("RGB" if channels == 3 else "L"))
        assert np.array_equal(array.reshape(expected.shape), expected)


def test_the_content_decides_not_the_name():
    image = noise(16, 8)
    array = decode_upload(encode(image, "PNG"), "photo.jpg", 3, UploadLimits())  # a PNG named .jpg
    assert np.array_equal(array, np.asarray(image))
    error = refused(b"hello, I am a text file\n" * 10, "x.png")
    assert (error.status, error.code) == (400, "not_an_image")
    assert "'x.png'" in error.message and "JPEG, PNG" in error.message


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    array = decode_upload(encode(noise(30, 10), "JPEG", exif=exif), "phone.jpg", 3, UploadLimits())
    assert array.shape == (30, 10, 3)


def test_a_phone_mpo_counts_as_jpeg():
    data = encode(noise(16, 8), "MPO", save_all=True, append_images=[noise(16, 8)])
    assert Image.open(BytesIO(data)).format == "MPO"
    assert decode_upload(data, "phone.jpg", 3, UploadLimits()).shape == (8, 16, 3)
    assert refused(data, limits=UploadLimits(formats=("PNG",))).code == "unsupported_format"


def test_truncated_jpeg_is_corrupt():
    data = encode(noise(64, 64), "JPEG", quality=95)
    error = refused(data[: len(data) // 2], "half.jpg")
    assert (error.status, error.code) == (400, "corrupt_image")
    assert "'half.jpg'" in error.message and "truncated" in error.message


def test_gif_is_an_unsupported_format():
    error = refused(encode(noise(8, 8).convert("P"), "GIF"), "anim.gif")
    assert (error.status, error.code) == (400, "unsupported_format")
    assert "GIF" in error.message and "JPEG, PNG, WEBP, BMP, PPM, TIFF" in error.message


@pytest.mark.parametrize("width, height", [(6000, 5000), (20000, 20000)])  # over our limit; the second over PIL's too
def test_too_many_pixels_is_refused_before_decoding(width, height, monkeypatch):
    data = png_header(width, height)
    assert len(data) < 100
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels were decoded"))
    error = refused(data, "huge.png")
    assert (error.status, error.code) == (413, "too_many_pixels")
    assert "'huge.png'" in error.message and "25,000,000" in error.message


def test_header_stub_is_otherwise_readable():
    """The stub above is refused for its size, not its content: under the limit it opens, then fails to decode."""
    assert refused(png_header(600, 500), "stub.png").code == "corrupt_image"


def test_our_pixel_limit_governs_not_pils(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ConfigError, match="MAX_IMAGE_PIXELS"):
        UploadLimits(max_pixels=1001)  # PIL would refuse images under this limit
    limits = UploadLimits(max_pixels=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_upload(encode(noise(40, 25), "PNG"), "a.png", 3, limits).shape == (25, 40, 3)  # = the limit
        assert refused(encode(noise(40, 26), "PNG"), limits=limits).code == "too_many_pixels"  # PIL warns: refused
        assert refused(encode(noise(60, 60), "PNG"), limits=limits).code == "too_many_pixels"  # PIL errors: refused


def test_size_limit_and_empty_upload():
    data = encode(noise(32, 32), "PNG")
    assert decode_upload(data, "a.png", 3, UploadLimits(max_request_bytes=len(data))).shape == (32, 32, 3)
    error = refused(data, "a.png", limits=UploadLimits(max_request_bytes=len(data) - 1))
    assert (error.status, error.code) == (413, "too_large")
    assert f"{len(data):,} bytes" in error.message
    error = refused(b"", "a.png")
    assert (error.status, error.code) == (400, "no_image")


def test_messages_name_the_client_file_never_a_path():
    assert "'face.txt'" in refused(b"not an image", "C:\\Users\\me\\face.txt").message
    assert "'face.txt'" in refused(b"not an image", "/home/me/face.txt").message
    assert refused(b"not an image", None).message.startswith("the upload is not an image")


def test_file_counts():
    limits = UploadLimits(max_files=3)
    check_file_count(1, limits)
    check_file_count(3, limits)
    with pytest.raises(UploadError) as caught:
        check_file_count(4, limits)
    assert (caught.value.status, caught.value.code) == (413, "too_many_files") and "at most 3" in caught.value.message
    with pytest.raises(UploadError) as caught:
        check_file_count(0, limits)
    assert (caught.value.status, caught.value.code) == (400, "no_image")


def test_limits_are_checked():
    with pytest.raises(ConfigError, match="max_files=0"):
        UploadLimits(max_files=0)
    with pytest.raises(ConfigError, match="formats"):
        UploadLimits(formats=())
    with pytest.raises(ConfigError, match="channels"):
        decode_upload(encode(noise(4, 4), "PNG"), "a.png", 4, UploadLimits())


def test_key_ids_are_drawn_apart_from_the_secret_and_never_start_with_a_dash(tmp_path, monkeypatch):
    """Issue 30 D10: the public id, shown and logged, reveals nothing of the secret; the CLI can always revoke it."""
    import re
    import secrets

    from metric.deploy.service.keys import KeyStore

    store = KeyStore(sqlite3.connect(tmp_path / "g.db", isolation_level=None))
    made = [store.create("verify") for _ in range(40)]
    assert all(re.fullmatch(r"[0-9a-f]{8}", record.key_id) and record.key_id not in key for key, record in made)
    ids = iter([made[0][1].key_id, "0badc0de"])  # a clash with an existing id is drawn again
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(ids))
    assert store.create("verify")[1].key_id == "0badc0de"
