"""The self-training report: the per-round table, and each round's figures across cross-validation folds."""

from __future__ import annotations

import numpy as np

ROUND_COLUMNS = (  # the printed table: (summary key, header)
    ("round", "round"),
    ("teacher", "teacher"),
    ("threshold", "threshold"),
    ("pseudo_identities", "pseudo ids"),
    ("images_kept", "kept"),
    ("pool_images", "pool"),
    ("purity", "purity"),
    ("true_identities_split", "split"),
    ("training_identities", "train ids"),
    ("test_eer", "student test EER"),
    ("test_pairs_accuracy", "pairs acc."),
)


def format_rounds(rows: list[dict]) -> str:
    """The per-round table, one line per round (mean ± std across folds under cross-validation)."""

    def cell(row: dict, key: str) -> str:
        value, std = row.get(key), row.get(f"{key}_std")
        if value is None:
            return "-"
        text = f"{value:.4f}" if isinstance(value, float) else str(value)
        return f"{text} ± {std:.4f}" if std is not None else text

    lines = [
        "Self-training, round by round (test identities unseen in training)",
        " | ".join(header for _, header in ROUND_COLUMNS),
    ]
    lines += [" | ".join(cell(row, key) for key, _ in ROUND_COLUMNS) for row in rows]
    return "\n".join(lines)


def rounds_across_folds(per_fold: list[list[dict]]) -> list[dict]:
    """Each round's figures as the mean over cross-validation folds (with `<key>_std`), where every fold has them."""
    rows = []
    for index in range(min(len(rounds) for rounds in per_fold)):
        folds = [rounds[index] for rounds in per_fold]
        row = {"round": folds[0]["round"], "teacher": folds[0]["teacher"], "folds": len(folds)}
        for key, value in folds[0].items():
            values = [f.get(key) for f in folds]
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and key != "round"
                and all(isinstance(v, (int, float)) for v in values)
            ):
                row[key] = float(np.mean(values))
                row[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        rows.append(row)
    return rows
