"""What a gallery checks when it is opened: the model's fingerprint, its recorded liveness guard and threshold."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from metric.deploy.gallery.store import GalleryStore
from metric.deploy.liveness import LivenessGate
from metric.deploy.probe import print_note
from metric.deploy.verifier import Verifier
from metric.errors import ConfigError


def fingerprint(verifier: Verifier) -> str:
    """sha256 of the net's (and head's) weights, or an outside embedder's spec and model-file sha256, and of the
    preprocessing, face front end included: what makes embeddings comparable."""
    digest = hashlib.sha256()
    modules = [verifier.net] + ([verifier.matcher.head] if hasattr(verifier.matcher, "head") else [])
    for module in modules:
        spec = getattr(module, "spec", dict)()
        if "kind" in spec:  # an outside or adapted embedder: its spec holds the file's sha256
            digest.update(json.dumps(spec, sort_keys=True).encode())
        if not isinstance(module, torch.nn.Module):
            continue
        for key, tensor in sorted(module.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(json.dumps(verifier.preprocess, sort_keys=True).encode())
    return digest.hexdigest()


def liveness_gate(
    store: GalleryStore, liveness: str | Path | None, detect: bool, enrolling: bool
) -> LivenessGate | None:
    """The gate for this call: the one given (enrollment records it as the gallery's guard), else the one the gallery
    records, checked unchanged by its sha256."""
    recorded = store.meta.get("liveness")
    if liveness is not None:
        gate = LivenessGate.from_checkpoint(liveness, detect)
        if enrolling and (recorded != str(gate.path) or store.meta.get("liveness_sha256") != gate.sha256):
            if recorded:
                print_note(f"{store.path} was guarded by {recorded}; it is now guarded by {gate.path}.")
            store.set_meta({"liveness": gate.path, "liveness_sha256": gate.sha256})
        elif recorded and recorded != str(gate.path):
            print_note(f"{store.path} is guarded by {recorded}; this call uses {gate.path} instead.")
        return gate
    if not recorded:
        return None
    if not Path(recorded).is_file():
        raise ConfigError(
            f"{store.path} is guarded by the liveness model {recorded}, which is missing: restore it, or "
            "pass --liveness <ckpt> (enroll records a new guard)."
        )
    gate = LivenessGate.from_checkpoint(recorded, detect)
    if gate.sha256 != store.meta.get("liveness_sha256"):
        raise ConfigError(
            f"the liveness model {recorded} changed since it was recorded as the guard of {store.path} "
            "(sha256 mismatch): pass --liveness <ckpt> to enroll to record the model you mean."
        )
    return gate


def threshold_change(store: GalleryStore, verifier: Verifier, ckpt: str | Path, accept: bool) -> dict | None:
    """None when the checkpoint decides at the threshold and matcher the gallery records; else ConfigError, or (accept)
    the new ones recorded in the gallery and returned as {"from": ..., "to": ...} for the audit log."""
    recorded = {"matcher": store.meta["matcher"], "threshold": store.meta["threshold"]}
    used = {"matcher": verifier.matcher.name, "threshold": repr(verifier.threshold)}
    if recorded == used:
        return None
    if not accept:
        raise ConfigError(
            f"{store.path} decides at threshold {recorded['threshold']} ({recorded['matcher']}), but {ckpt} is "
            f"calibrated at {used['threshold']} ({used['matcher']}): every decision would change without a word. Use "
            "the checkpoint the gallery was built with, or pass --accept-new-threshold to adopt the new threshold "
            "(it is recorded in the gallery and the audit log)."
        )
    store.set_meta(used)
    print_note(
        f"{store.path} now decides at threshold {used['threshold']} ({used['matcher']}); it recorded "
        f"{recorded['threshold']} ({recorded['matcher']})."
    )
    return {"from": recorded, "to": used, "checkpoint": str(Path(ckpt).resolve())}
