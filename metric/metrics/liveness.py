"""Presentation-attack-detection (liveness) metrics from per-presentation scores: APCER, BPCER, ACER, EER, BPCER@APCER.

Scores are liveness scores (higher = more likely a live, bona fide face); a presentation is accepted as bona fide
when score >= threshold. Each presentation has an integer type: 0 = bona fide, 1.. = attack type (CelebA-Spoof codes:
1 photo, 2 poster, 3 A4, 4 face mask, 5 upper-body mask, 6 region mask, 7 PC, 8 pad, 9 phone, 10 3D mask).

Definitions (ISO/IEC 30107-3, OULU-NPU convention), at a threshold t:
  APCER_k  share of the type-k attack presentations with score >= t (wrongly accepted as bona fide);
  APCER    the maximum of APCER_k over the attack types present (the headline number);
  APCER_pooled  share of all attack presentations with score >= t (for information only);
  BPCER    share of the bona fide presentations with score < t (wrongly rejected);
  ACER     (APCER + BPCER) / 2;
  EER      equal error rate of the pooled ROC (bona fide as genuine, all attacks as impostors), so FAR is the pooled
           APCER and FRR the BPCER; from verification.roc and verification.eer, with its threshold;
  threshold at APCER x  the loosest (lowest) threshold among the distinct scores (and +inf: reject everything) whose
           APCER (max over types) is <= x; ties are accepted together;
  BPCER@APCER=x  the BPCER there; None when the smallest attack type has fewer than 3/x presentations
           (the 3/x rule of verification.min_supported_far).
Like verification.py: one sort and cumulative counts, O(number of scores) memory per attack type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metric.metrics import verification as V

BONA_FIDE = 0


@dataclass(frozen=True)
class PadRates:
    """Error rates at one threshold, with the counts they come from."""

    threshold: float
    apcer_per_type: dict[int, float]
    apcer_max: float
    apcer_pooled: float
    bpcer: float
    acer: float
    n_bona_fide: int
    n_attacks: dict[int, int]

    def to_dict(self) -> dict:
        """JSON-friendly dict: plain floats and ints, string keys for the per-type dicts."""
        return {
            "threshold": float(self.threshold),
            "apcer_per_type": {str(k): float(v) for k, v in self.apcer_per_type.items()},
            "apcer_max": float(self.apcer_max),
            "apcer_pooled": float(self.apcer_pooled),
            "bpcer": float(self.bpcer),
            "acer": float(self.acer),
            "n_bona_fide": int(self.n_bona_fide),
            "n_attacks": {str(k): int(v) for k, v in self.n_attacks.items()},
        }


def check_presentations(scores: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 scores and int64 types of equal length, finite scores, at least one bona fide and one attack."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    raw = np.asarray(types).ravel()
    if raw.dtype == bool or not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise ValueError(f"presentation types must be integers (0 = bona fide, 1.. = attack type), got {raw.dtype}")
    if np.issubdtype(raw.dtype, np.floating) and not (np.isfinite(raw).all() and (raw == np.round(raw)).all()):
        raise ValueError("presentation types must be whole numbers (0 = bona fide, 1.. = attack type)")
    types = raw.astype(np.int64)
    if scores.shape != types.shape:
        raise ValueError(f"scores ({scores.size}) and types ({types.size}) differ in length")
    if (types < 0).any():
        raise ValueError("negative presentation type: 0 is bona fide, attack types are 1..")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf")
    if not (types == BONA_FIDE).any():
        raise ValueError("no bona fide presentation: BPCER needs at least one")
    if (types == BONA_FIDE).all():
        raise ValueError("no attack presentation: APCER needs at least one")
    return scores, types


def _check_target(target_apcer: float) -> None:
    if not 0.0 < target_apcer < 1.0:
        raise ValueError(f"target APCER must lie in (0, 1), got {target_apcer}")


def pad_rates(scores: np.ndarray, types: np.ndarray, threshold: float) -> PadRates:
    """APCER per type, max and pooled, BPCER and ACER when accepting every score >= threshold."""
    scores, types = check_presentations(scores, types)
    accepted = scores >= threshold
    attack = types != BONA_FIDE
    kinds = np.unique(types[attack])
    apcer = {int(k): float(accepted[types == k].mean()) for k in kinds}
    n_attacks = {int(k): int((types == k).sum()) for k in kinds}
    bpcer = float((~accepted[~attack]).mean())
    apcer_max = max(apcer.values())
    return PadRates(
        threshold=float(threshold),
        apcer_per_type=apcer,
        apcer_max=apcer_max,
        apcer_pooled=float(accepted[attack].mean()),
        bpcer=bpcer,
        acer=(apcer_max + bpcer) / 2,
        n_bona_fide=int((~attack).sum()),
        n_attacks=n_attacks,
    )


def threshold_at_apcer(scores: np.ndarray, types: np.ndarray, target_apcer: float) -> float:
    """The loosest threshold (a distinct score, or +inf) whose APCER, the max over attack types, is <= target."""
    _check_target(target_apcer)
    scores, types = check_presentations(scores, types)
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_types = scores[order], types[order]
    # last index of each run of equal scores: a threshold accepts all of its ties at once
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), scores.size - 1]
    ok = np.ones(last_of_tie.size, dtype=bool)
    for k in np.unique(types[types != BONA_FIDE]):
        is_k = sorted_types == k
        ok &= np.cumsum(is_k)[last_of_tie] / is_k.sum() <= target_apcer
    thresholds = np.r_[np.inf, sorted_scores[last_of_tie]]
    ok = np.r_[True, ok]  # rejecting everything has APCER 0; APCER only grows as the threshold loosens
    return float(thresholds[np.flatnonzero(ok)[-1]])


def bpcer_at_apcer(scores: np.ndarray, types: np.ndarray, target_apcer: float) -> float | None:
    """BPCER at threshold_at_apcer; None when the smallest attack type has fewer than 3/target presentations."""
    _check_target(target_apcer)
    scores, types = check_presentations(scores, types)
    _, counts = np.unique(types[types != BONA_FIDE], return_counts=True)
    if target_apcer < V.min_supported_far(int(counts.min())):
        return None
    return pad_rates(scores, types, threshold_at_apcer(scores, types, target_apcer)).bpcer


def pad_eer(scores: np.ndarray, types: np.ndarray) -> tuple[float, float]:
    """EER of the pooled ROC (bona fide against all attacks) and its threshold."""
    scores, types = check_presentations(scores, types)
    return V.eer(V.roc(scores, types == BONA_FIDE))


def _target_name(target: float) -> str:
    """0.01 -> '1pct', 0.05 -> '5pct', 0.001 -> '0.1pct'."""
    return f"{target * 100:g}pct"


def pad_summary(scores: np.ndarray, types: np.ndarray, threshold: float, targets=(0.01, 0.05)) -> dict:
    """Flat JSON-friendly summary: rates at threshold, per-type APCER and counts, EER, BPCER at each target APCER."""
    scores, types = check_presentations(scores, types)
    rates = pad_rates(scores, types, threshold)
    eer, eer_threshold = pad_eer(scores, types)
    out = {
        "threshold": rates.threshold,
        "apcer_max": rates.apcer_max,
        "apcer_pooled": rates.apcer_pooled,
        "bpcer": rates.bpcer,
        "acer": rates.acer,
        "eer": eer,
        "eer_threshold": eer_threshold,
    }
    out.update({f"apcer_{k}": v for k, v in rates.apcer_per_type.items()})
    out.update({f"bpcer_at_apcer_{_target_name(x)}": bpcer_at_apcer(scores, types, x) for x in targets})
    out["n_bona_fide"] = rates.n_bona_fide
    out["n_attacks"] = sum(rates.n_attacks.values())
    out.update({f"n_attacks_{k}": n for k, n in rates.n_attacks.items()})
    return out


def condition_table(scores: np.ndarray, types: np.ndarray, conditions: list, threshold: float) -> list[dict]:
    """One row per distinct condition value (sorted): counts, BPCER and pooled APCER in that group (None if empty)."""
    scores, types = check_presentations(scores, types)
    values, group = np.unique(np.asarray(conditions).ravel(), return_inverse=True)
    if group.size != scores.size:
        raise ValueError(f"conditions ({group.size}) and scores ({scores.size}) differ in length")
    accepted = scores >= threshold
    bona_fide = types == BONA_FIDE
    rows = []
    for g, value in enumerate(values):
        in_g = group == g
        live, attack = in_g & bona_fide, in_g & ~bona_fide
        rows.append(
            {
                "condition": value.item() if hasattr(value, "item") else value,
                "n_bona_fide": int(live.sum()),
                "n_attacks": int(attack.sum()),
                "bpcer": float((~accepted[live]).mean()) if live.any() else None,
                "apcer": float(accepted[attack].mean()) if attack.any() else None,
            }
        )
    return rows
