"""Identity-disjoint cross-validation: a run once per requested fold, and the folds' figures aggregated."""

from __future__ import annotations

from collections.abc import Callable

from datamodules.folds import CrossValidation, CVFold
from metric.metrics.cross_validation import aggregate_folds


def cross_validate(cv: CrossValidation, run_fold: Callable[[CVFold], dict | None]) -> dict | None:
    """Run every requested fold through `run_fold` (its summary: test_eer, best_val_eer, ...) and aggregate them;
    None when a fold returns None (under DDP, a rank other than 0, which writes nothing)."""
    per_fold = []
    for fold in cv.requested():  # all k, or only cv.fold (to spread folds over jobs: -m cv.fold=0,1,2)
        print(f"cross-validation: fold {fold.fold + 1} of {fold.folds}")
        result = run_fold(fold)
        if result is None:
            return None
        per_fold.append({"fold": fold.fold, **result})
    return aggregate_folds(per_fold)
