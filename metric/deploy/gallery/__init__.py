"""Gallery API: one-shot enrollment, 1:1 verification and 1:N identification, without retraining.

    from metric.deploy.gallery import Gallery

    gallery = Gallery.open("people.db", ckpt="best.ckpt")      # creates the file on first use
    gallery.enroll("alice", ["alice.jpg"])
    gallery.verify("alice", "probe.jpg")                        # Verification(score, threshold, accepted)
    gallery.identify("probe.jpg", top_k=5)                      # Identification(matches, known, liveness, face)

    Gallery.open("people.db", ckpt="best.ckpt", liveness="live.ckpt")  # a liveness gate first: spoofs are refused

The package loads its model stack (torch, timm, the front end) only when `Gallery` and its kin are first used, so
tools that only touch the database (`metric.deploy.gallery.store`: `metric.serve keys`, `audit`, `gallery list`)
start at once.
"""

from __future__ import annotations

PUBLIC = ("Gallery", "Identification", "FacesIdentification", "SearchIndex", "Match", "fingerprint", "liveness_gate")


def __getattr__(name: str):
    if name in PUBLIC:
        from metric.deploy.gallery import api

        return getattr(api, name)
    raise AttributeError(f"module 'metric.deploy.gallery' has no attribute {name!r}")
