"""The gallery API: a GalleryStore plus the model whose embeddings it holds (see the package docstring)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from datamodules.faces.frontend import FaceCrop
from datamodules.images import IMAGE_SUFFIXES, BadImage
from metric.deploy.gallery.checks import fingerprint, liveness_gate, threshold_change
from metric.deploy.gallery.results import FacesIdentification, Identification, Match, SearchIndex
from metric.deploy.gallery.search import build_index
from metric.deploy.gallery.search import top_k as best_k
from metric.deploy.gallery.store import GalleryStore, identity_name
from metric.deploy.liveness import LivenessGate
from metric.deploy.verifier import Verification, Verifier
from metric.errors import ConfigError


class Gallery:
    """A GalleryStore plus the model whose embeddings it holds (checked by fingerprint)."""

    def __init__(self, store: GalleryStore, verifier: Verifier):
        self.store = store
        self.verifier = verifier
        self._index: SearchIndex | None = None
        self._index_version: tuple[int, int] | None = None
        self._index_lock = threading.Lock()
        # this object's committed writes: SQLite's data_version does not count its own connection's commits
        self._writes = 0
        self._writes_lock = threading.Lock()
        self.threshold_change: dict | None = None  # set by open(accept_new_threshold=True) when it adopted one

    @classmethod
    def open(
        cls,
        path: str | Path,
        ckpt: str | Path | None = None,
        storage: str = "float32",
        index: str = "exact",
        detect: bool = True,
        liveness: str | Path | None = None,
        enrolling: bool = False,
        accept_new_threshold: bool = False,
    ) -> Gallery:
        """Open a gallery; with ckpt, create it if missing, and refuse a checkpoint (weights or face front end) other
        than the gallery's. detect=False: the images given are already aligned face crops. `liveness`: a liveness
        checkpoint that gates every image (`enrolling=True` records it as the gallery's guard); without it, the guard
        the gallery records, if any."""
        path = Path(path)
        if not path.exists() or GalleryStore.is_blank(path):  # a creation killed before its first commit: start anew
            if ckpt is None:
                raise ConfigError(f"gallery {str(path)!r} does not exist; create it with `enroll --ckpt <checkpoint>`.")
            verifier = Verifier.from_checkpoint(ckpt, detect=detect)
            gate = LivenessGate.from_checkpoint(liveness, detect) if liveness is not None else None
            guard = {"liveness": gate.path, "liveness_sha256": gate.sha256} if gate is not None else {}
            store = GalleryStore(
                path,
                create={
                    "checkpoint": str(Path(ckpt).resolve()),
                    "fingerprint": fingerprint(verifier),
                    "matcher": verifier.matcher.name,
                    "threshold": repr(verifier.threshold),
                    "embedding_dim": verifier.net.embedding_dim,
                    "storage": storage,
                    "index": index,
                    **guard,
                },
            )
            verifier.liveness = gate
            return cls(store, verifier)
        store = GalleryStore(path)
        verifier = Verifier.from_checkpoint(
            ckpt or store.meta["checkpoint"], matcher=store.meta["matcher"], detect=detect
        )
        if fingerprint(verifier) != store.meta["fingerprint"]:
            raise ConfigError(
                f"{path} was built with checkpoint {store.meta['checkpoint']}, but the probe would be embedded by "
                f"{Path(ckpt or store.meta['checkpoint']).resolve()}, whose weights or face front end "
                f"({verifier.faces.front_end.describe()}) differ (fingerprint mismatch). Use the gallery's checkpoint, "
                "or enroll everyone again into a new gallery."
            )
        change = threshold_change(store, verifier, ckpt or store.meta["checkpoint"], accept_new_threshold)
        verifier.liveness = liveness_gate(store, liveness, detect, enrolling)
        gallery = cls(store, verifier)
        gallery.threshold_change = change
        return gallery

    # enrollment -----------------------------------------------------------------------------------------------
    def embed_files(self, images: list[str | Path]) -> np.ndarray:
        if not images:
            raise ConfigError("no image given: enroll, verify and identify need at least one image.")
        return self.verifier.embed(list(images)).numpy()

    def enroll(
        self,
        name: str,
        images: list[str | Path],
        replace: bool = False,
        create_only: bool = False,
        also: Callable[[], None] | None = None,
    ) -> None:
        """One identity from one or several images (template = normalised mean), in one transaction; behind a gate,
        a spoofed image refuses the whole enrollment (SpoofDetected names it), and so does a photo with several faces
        (SeveralFaces). create_only: refuse an identity that exists (IdentityExists); `also` runs in the write's
        transaction."""
        name = identity_name(name)
        if not images:
            raise ConfigError("no image given: enroll, verify and identify need at least one image.")
        if self.verifier.liveness is not None:
            for image in images:
                self.verifier.liveness.require_live(image)
        embeddings = self.verifier.embed_pixels(np.stack([self.verifier.load_single(i) for i in images]))
        self.store.enroll_many(
            [(name, embeddings.sum(0), len(embeddings))], replace=replace, create_only=create_only, also=also
        )
        self._written()

    def enroll_folder(
        self,
        root: str | Path,
        replace: bool = False,
        batch_identities: int = 64,
        progress: Callable[[Iterable], Iterable] = lambda x: x,
    ) -> tuple[int, list[str]]:
        """Every <root>/<identity>/<images>; identities are written `batch_identities` per transaction, each whole.
        Unreadable images, and behind a gate spoofed ones, are skipped and returned; returns (identities enrolled,
        skipped files)."""
        root = Path(root)
        folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        if not folders:
            raise ConfigError(f"--from-folder {str(root)!r} holds no <identity>/<images> folders.")
        pending, skipped, enrolled = [], [], 0
        for folder in progress(folders):
            try:
                identity_name(folder.name)
            except ConfigError as error:
                skipped.append(f"{folder}: {error}")
                continue
            loaded = []
            for image in sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES):
                try:
                    if self.verifier.liveness is not None:
                        self.verifier.liveness.require_live(image)
                    loaded.append(self.verifier.load_single(image))
                except BadImage as error:
                    skipped.append(str(error))
            if loaded:  # one forward pass per identity
                embeddings = self.verifier.embed(loaded).numpy()
                pending.append((folder.name, embeddings.sum(0), len(embeddings)))
            if len(pending) >= batch_identities:
                enrolled += self.store.enroll_many(pending, replace=replace)
                self._written()
                pending = []
        if pending:
            enrolled += self.store.enroll_many(pending, replace=replace)
            self._written()
        return enrolled, skipped

    def remove(self, name: str, also: Callable[[], None] | None = None) -> None:
        self.store.remove(name, also)
        self._written()

    def _written(self) -> None:
        """Count a committed write, after its commit: every later index() call then sees a new version and rebuilds
        (an index built from a snapshot read before the commit is never served after it)."""
        with self._writes_lock:
            self._writes += 1

    # matching ---------------------------------------------------------------------------------------------------
    def verify(self, name: str, image: str | Path) -> Verification:
        """The liveness check first (a spoof is rejected unmatched), then the probe against the template."""
        template = torch.from_numpy(self.store.template(name)[None].astype(np.float32))
        check = self.verifier.check_liveness(image)
        if check is not None and not check.live:
            return self.verifier.rejected(check)
        face = self.verifier.face(image)
        probe = torch.from_numpy(np.asarray(self.verifier.embed_pixels(face.image[None])))
        return self.verifier.score(probe, template, check, face)

    def index(self) -> SearchIndex:
        """The search index over the stored templates, built once and rebuilt after any change, this object's or
        another connection's (another server process on the same file); safe to call from several threads. The
        version is read before the templates: a write that commits during a build leaves the index marked stale."""
        with self._index_lock:
            with self._writes_lock:
                version = (self.store.data_version(), self._writes)
            if self._index is None or version != self._index_version:
                names, templates = self.store.templates()
                meta = self.store.meta
                # float templates stay in memory only where search needs them (the exact float32 index shares
                # them); a compact or FAISS gallery searched by cosine keeps just its index
                needed = self.verifier.matcher.name != "cosine" or (meta["storage"], meta["index"]) == (
                    "float32",
                    "exact",
                )
                self._index = SearchIndex(
                    build_index(templates, meta["storage"], meta["index"]), names, templates if needed else None
                )
                self._index_version = version
            return self._index

    def search(self, probes: np.ndarray, top_k: int = 5) -> list[list[Match]]:
        """Top-k matches per probe embedding, scored by the gallery's matcher, best first."""
        index, names, templates = self.index()
        matcher = self.verifier.matcher
        if matcher.name == "logistic":  # the head does not rank like an inner product: score every template
            with torch.no_grad():
                scores = matcher.score_matrix(torch.from_numpy(probes), torch.from_numpy(templates)).numpy()
            rows, values = best_k(scores, top_k)
        else:
            rows, values = index.search(probes, top_k)
            if matcher.name != "cosine":  # euclidean and mse rank unit vectors as cosine does; rescore them
                with torch.no_grad():
                    values = np.stack(
                        [
                            matcher.score(
                                torch.from_numpy(np.repeat(p[None], len(r), 0)), torch.from_numpy(templates[r])
                            ).numpy()
                            for p, r in zip(probes, rows)
                        ]
                    )
        return [[Match(names[i], float(s)) for i, s in zip(r, v) if i >= 0] for r, v in zip(rows, values)]

    def identify(self, image: str | Path, top_k: int = 5) -> Identification:
        """(top-k matches, known, liveness): known is False (open set: "unknown") when the best is below the
        threshold; a probe the gate rejects is not searched (no matches)."""
        check = self.verifier.check_liveness(image)
        if check is not None and not check.live:
            return Identification([], False, check)
        face = self.verifier.face(image)
        matches = self.search(np.asarray(self.verifier.embed_pixels(face.image[None])), top_k)[0]
        return Identification(matches, bool(matches) and matches[0].score >= self.verifier.threshold, check, face)

    def identify_all(self, image: str | Path, top_k: int = 5) -> FacesIdentification:
        """identify() for every face the front end finds in the image, largest first: (face, matches, known) each.
        Behind a gate the image is checked first (the gate judges its largest face); a spoof is not searched."""
        check = self.verifier.check_liveness(image)
        if check is not None and not check.live:
            return FacesIdentification([], check)
        if self.verifier.detect:
            crops = self.verifier.crops(image, all_faces=True)
        else:  # the image is the one aligned crop
            crops = [FaceCrop(self.verifier.load(image), faces=-1)]
        embeddings = self.verifier.embed_pixels(np.stack([c.image for c in crops]))
        return FacesIdentification(
            [
                (crop, matches, bool(matches) and matches[0].score >= self.verifier.threshold)
                for crop, matches in zip(crops, self.search(embeddings, top_k))
            ],
            check,
        )

    def close(self) -> None:
        self.store.close()
