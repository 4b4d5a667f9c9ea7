"""Gallery: one-shot enrollment, verify/identify, SQLite atomicity under SIGKILL, fingerprints, bad input, search."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from metric.deploy.gallery import Gallery
from metric.deploy.gallery.search import ExactIndex, FaissIndex
from metric.deploy.gallery.store import FORMAT_VERSION, GalleryStore
from metric.errors import ConfigError
from metric.gallery import main as cli
from tests.conftest import REPO_ROOT


@pytest.fixture
def ckpt(tiny_triplet_run):
    return tiny_triplet_run[1]["best_checkpoint"]


@pytest.fixture
def faces(tiny_triplet_run, tmp_path) -> Path:
    """A <root>/<identity>/<images> tree of the tiny synthetic test identities (PNG, as cached)."""
    import shutil

    cfg, _ = tiny_triplet_run
    from metric.pipelines.fit import build

    split = build(cfg)[0].splits["test"]
    root = tmp_path / "faces"
    for source, label in zip(split.sources, split.labels):
        folder = root / f"person{label}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, folder / Path(source).name)
    return root


def images_of(root: Path, name: str) -> list[Path]:
    return sorted((root / name).iterdir())


def test_enroll_verify_identify_list_remove(ckpt, faces, tmp_path, capsys):
    db = tmp_path / "g.db"
    people = sorted(p.name for p in faces.iterdir())
    alice, bob = people[:2]
    assert (
        cli(["enroll", "--gallery", str(db), "--ckpt", ckpt, "--identity", alice, str(images_of(faces, alice)[0])]) == 0
    )
    gallery = Gallery.open(db)
    gallery.enroll(bob, images_of(faces, bob)[:2])
    # verify: the stored threshold decides; the CLI exit code follows the decision
    probe = images_of(faces, alice)[1]
    result = gallery.verify(alice, probe)
    assert result.threshold == gallery.verifier.threshold
    assert cli(["verify", "--gallery", str(db), "--identity", alice, str(probe)]) == (0 if result.accepted else 1)
    # identify: top-k, best first, and "unknown" below the threshold
    matches, known = gallery.identify(probe, top_k=5)[:2]
    assert [m.identity for m in matches] and len(matches) == 2
    assert matches[0].score >= matches[1].score
    assert known == (matches[0].score >= gallery.verifier.threshold)
    # re-enrolling adds images; --replace replaces
    gallery.enroll(alice, images_of(faces, alice)[1:3])
    assert dict((n, c) for n, c, _ in gallery.store.list())[alice] == 3
    gallery.enroll(alice, images_of(faces, alice)[:1], replace=True)
    assert dict((n, c) for n, c, _ in gallery.store.list())[alice] == 1
    assert cli(["list", "--gallery", str(db)]) == 0 and alice in capsys.readouterr().out
    assert cli(["remove", "--gallery", str(db), bob]) == 0
    assert cli(["info", "--gallery", str(db)]) == 0
    out = capsys.readouterr().out
    assert f"format_version  {FORMAT_VERSION}" in out and "identities      1" in out and "matcher" in out


def test_template_is_the_normalised_mean(ckpt, faces, tmp_path):
    gallery = Gallery.open(tmp_path / "g.db", ckpt=ckpt)
    name = sorted(p.name for p in faces.iterdir())[0]
    images = images_of(faces, name)[:3]
    gallery.enroll(name, images)
    mean = gallery.embed_files(images).mean(0)
    np.testing.assert_allclose(gallery.store.template(name), mean / np.linalg.norm(mean), atol=1e-6)


def test_folder_enrollment_and_wal_readers(ckpt, faces, tmp_path):
    db = tmp_path / "g.db"
    assert cli(["enroll", "--gallery", str(db), "--ckpt", ckpt, "--from-folder", str(faces)]) == 0
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reader = GalleryStore(db)
    writer = Gallery.open(db)
    with writer.store.transaction():  # a writer holds the lock ...
        writer.store.db.execute("DELETE FROM identities")
        assert reader.info().identities == 6  # ... and a reader still sees the committed gallery
    assert GalleryStore(db).info().identities == 0


def test_sigkill_mid_bulk_enrollment_leaves_a_valid_gallery(tmp_path):
    """A real subprocess enrolls identities 50 per transaction and is killed with SIGKILL mid-way."""
    db = tmp_path / "g.db"
    script = f"""
import numpy as np, sys
from metric.deploy.gallery.store import GalleryStore
store = GalleryStore({str(db)!r}, create={{"checkpoint": "x", "fingerprint": "f", "matcher": "cosine",
                                          "threshold": "0.5", "embedding_dim": 8}})
rng = np.random.default_rng(0)
for batch in range(100000):
    rows = [(f"id{{batch}}_{{i}}", np.full(8, 1.0, np.float32) * (i + 1), i + 1) for i in range(50)]
    store.enroll_many(rows)
    if batch == 3:
        print("started", flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    db_check = sqlite3.connect(db)
    assert db_check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = GalleryStore(db)
    rows = store.list()
    assert len(rows) >= 200 and len(rows) % 50 == 0  # whole transactions only
    for name, count, _ in rows:
        i = int(name.split("_")[1])
        assert count == i + 1
        np.testing.assert_allclose(store.sums([name])[name][0], np.full(8, i + 1.0))


def test_enrollment_throughput_into_sqlite(tmp_path):
    """Writes only (embedding left out): at least 10,000 identities per second, 1000 per transaction."""
    store = GalleryStore(
        tmp_path / "g.db",
        create={"checkpoint": "x", "fingerprint": "f", "matcher": "cosine", "threshold": "0.5", "embedding_dim": 128},
    )
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20_000, 128)).astype(np.float32)
    start = time.perf_counter()
    for b in range(0, 20_000, 1000):
        store.enroll_many([(f"id{i}", vectors[i], 1) for i in range(b, b + 1000)])
    rate = 20_000 / (time.perf_counter() - start)
    print(f"enrollment: {rate:,.0f} identities/s")
    assert store.info().identities == 20_000
    assert rate >= 10_000


def test_other_checkpoint_is_refused_naming_both(ckpt, tmp_path, make_cfg):
    from metric.pipelines.train import train

    db = tmp_path / "g.db"
    Gallery.open(db, ckpt=ckpt).close()
    other = train(
        make_cfg(
            "experiment=triplet",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "matcher.target_far=0.01",
            "seed=7",
        )
    )["best_checkpoint"]
    with pytest.raises(ConfigError, match="fingerprint mismatch") as error:
        Gallery.open(db, ckpt=other)
    assert str(Path(ckpt).resolve()) in str(error.value) and str(Path(other).resolve()) in str(error.value)


@pytest.mark.parametrize("case", ["corrupt image", "no images", "unknown identity", "not a gallery", "newer format"])
def test_bad_input_exits_2_with_one_message(case, ckpt, faces, tmp_path, capsys):
    db = tmp_path / "g.db"
    name = sorted(p.name for p in faces.iterdir())[0]
    assert (
        cli(["enroll", "--gallery", str(db), "--ckpt", ckpt, "--identity", name, str(images_of(faces, name)[0])]) == 0
    )
    capsys.readouterr()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG truncated")
    if case == "corrupt image":
        args = ["verify", "--gallery", str(db), "--identity", name, str(bad)]
    elif case == "no images":
        args = ["enroll", "--gallery", str(db), "--identity", "zed"]
    elif case == "unknown identity":
        args = ["remove", "--gallery", str(db), "nobody"]
    elif case == "not a gallery":
        bad.write_text("hello")
        args = ["info", "--gallery", str(bad)]
    else:
        sqlite3.connect(db).execute("UPDATE meta SET value = '99' WHERE key = 'format_version'").connection.commit()
        args = ["list", "--gallery", str(db)]
    before = GalleryStore(db).info().identities if case != "newer format" else None
    assert cli(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "Traceback" not in err[0]
    if before is not None:
        assert GalleryStore(db).info().identities == before  # nothing half-written


@pytest.mark.parametrize("storage", ["float16", "int8"])
def test_compact_storage_keeps_recall_and_shrinks(storage):
    rng = np.random.default_rng(0)
    templates = rng.normal(size=(20_000, 64)).astype(np.float32)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    queries = templates[:500] + rng.normal(scale=0.05, size=(500, 64)).astype(np.float32)
    exact = ExactIndex(templates)
    compact = ExactIndex(templates, storage, chunk_rows=4096)
    truth = exact.search(queries, 1)[0][:, 0]
    recall = (compact.search(queries, 1)[0][:, 0] == truth).mean()
    assert recall >= 0.999
    assert compact.nbytes <= exact.nbytes / (2 if storage == "float16" else 3.5)


@pytest.mark.parametrize("kind,storage", [("hnsw", "float32"), ("hnsw", "int8"), ("ivf", "float32"), ("ivf", "int8")])
def test_faiss_index_recall(kind, storage):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    templates = rng.normal(size=(5_000, 32)).astype(np.float32)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    queries = templates[:300] + rng.normal(scale=0.05, size=(300, 32)).astype(np.float32)
    truth = ExactIndex(templates).search(queries, 1)[0][:, 0]
    index = FaissIndex(templates, kind, storage)
    found = index.search(queries, 1)[0][:, 0]
    assert (found == truth).mean() >= 0.999
    assert index.code_bytes == (32 if storage == "int8" else 128)  # int8: a quarter of the float32 vectors


def test_empty_faiss_index_finds_nothing():
    pytest.importorskip("faiss")
    indices, scores = FaissIndex(np.zeros((0, 16), np.float32), "ivf", "int8").search(np.ones((2, 16), np.float32), 5)
    assert indices.shape == scores.shape == (2, 0)


def test_a_rebuild_racing_a_delete_or_an_enrollment_never_serves_the_old_gallery(ckpt, tmp_path):
    """Issue 30 D1: an index rebuild that read the templates before a write commits must not be served after it.
    The rebuild is held, by a hook, between reading the templates and storing the index, while the write commits."""
    import threading

    gallery = Gallery.open(tmp_path / "g.db", ckpt=ckpt)
    other = GalleryStore(tmp_path / "g.db")  # another connection's writes make the next search rebuild
    rng = np.random.default_rng(0)
    dim = gallery.verifier.net.embedding_dim
    other.enroll_many([(f"p{i}", rng.normal(size=dim).astype(np.float32), 1) for i in range(3000)])
    probe = gallery.store.template("p7")[None].astype(np.float32)
    (height, width), channels = gallery.verifier.size, int(gallery.verifier.preprocess["channels"])
    face = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    read, release = threading.Event(), threading.Event()
    templates = gallery.store.templates

    def slow_templates():
        snapshot = templates()
        read.set()
        release.wait(10)
        return snapshot

    for write in ("remove", "enroll"):
        other.enroll_many([(f"filler-{write}", rng.normal(size=dim).astype(np.float32), 1)])
        gallery.store.templates = slow_templates
        read.clear(), release.clear()
        builder = threading.Thread(target=gallery.index)
        builder.start()
        assert read.wait(10)
        if write == "remove":
            gallery.remove("p7")
        else:
            gallery.enroll("newcomer", [face])
        release.set()
        builder.join()
        gallery.store.templates = templates
        if write == "remove":
            assert all(m.identity != "p7" for m in gallery.search(probe, top_k=3)[0])
        else:
            assert gallery.search(gallery.verifier.embed([face]).numpy(), top_k=1)[0][0].identity == "newcomer"


def test_a_gallery_killed_before_its_first_commit_is_created_anew_and_galleries_are_private(ckpt, tmp_path):
    """Issue 30 D11 and D10: an SQLite file with no tables (a creation killed before its schema committed) is a new
    gallery, not 'not a gallery'; a gallery and its WAL are readable by their owner only."""
    db = tmp_path / "g.db"
    blank = sqlite3.connect(db)
    blank.execute("PRAGMA journal_mode=WAL")
    blank.close()
    assert db.stat().st_size > 0
    with pytest.raises(ConfigError, match="does not exist; create it"):
        Gallery.open(db)
    gallery = Gallery.open(db, ckpt=ckpt)
    gallery.store.enroll_many([("alice", np.ones(gallery.verifier.net.embedding_dim, np.float32), 1)])
    gallery.close()
    assert Gallery.open(db).store.info().identities == 1
    fresh = Gallery.open(tmp_path / "new.db", ckpt=ckpt)
    fresh.store.enroll_many([("bob", np.ones(fresh.verifier.net.embedding_dim, np.float32), 1)])
    for path in (tmp_path / "new.db", tmp_path / "new.db-wal"):
        assert path.stat().st_mode & 0o777 == 0o600, path
    (tmp_path / "other.db").write_bytes(b"not a database at all, but the user's own file")
    with pytest.raises(ConfigError, match="not a gallery"):
        Gallery.open(tmp_path / "other.db", ckpt=ckpt)
    assert (tmp_path / "other.db").read_bytes().startswith(b"not a database")
