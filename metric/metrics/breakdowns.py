"""How an error rate varies: an identity-bootstrap interval of the EER, and FAR / FRR per condition."""

from __future__ import annotations

import numpy as np

from metric.metrics import verification as V


def eer_confidence_interval(
    scores: np.ndarray,
    genuine: np.ndarray,
    first_id: np.ndarray,
    second_id: np.ndarray,
    reps: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the EER over bootstrap resamples of the *identities* (pairs sharing an identity
    are not independent): a pair's weight is the product of its two identities' resample counts."""
    identities, inverse = np.unique(np.r_[first_id, second_id], return_inverse=True)
    a, b = inverse[: len(first_id)], inverse[len(first_id) :]
    order = np.argsort(-scores, kind="stable")
    a, b, genuine = a[order], b[order], genuine[order]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(reps):
        counts = np.bincount(rng.integers(0, identities.size, identities.size), minlength=identities.size)
        weight = np.where(genuine, counts[a], counts[a] * counts[b]).astype(np.float64)
        g, i = np.cumsum(weight * genuine), np.cumsum(weight * ~genuine)
        if g[-1] == 0 or i[-1] == 0:
            continue
        curve = V.Roc(np.r_[np.inf, np.zeros(len(g))], np.r_[0.0, i / i[-1]], 1 - np.r_[0.0, g / g[-1]], 1, 1)
        values.append(V.eer(curve)[0])
    if not values:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def condition_breakdown(
    scores: np.ndarray,
    genuine: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    factors: list[dict],
    threshold: float,
) -> list[dict]:
    """FAR, FRR and pair counts per (factor, value) at one global threshold; a pair counts for a value when
    either of its images has it."""
    keys = sorted({k for f in factors for k in f if k != "distractor"})
    accepted = scores >= threshold
    rows = []
    for key in keys:
        values = np.array([str(f.get(key, "")) for f in factors])
        for value in sorted(set(values) - {""}):
            has = values == value
            mask = has[first] | has[second]
            g, i = mask & genuine, mask & ~genuine
            rows.append(
                {
                    "factor": key,
                    "value": value,
                    "genuine_pairs": int(g.sum()),
                    "impostor_pairs": int(i.sum()),
                    "far": float(accepted[i].mean()) if i.any() else None,
                    "frr": float((~accepted[g]).mean()) if g.any() else None,
                }
            )
    return rows
