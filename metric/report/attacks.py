"""Several metric.attack runs in one report: every attack's success-versus-budget curves side by side (one panel per
attack and goal) and one markdown table per attack kind, each run named by its label."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from metric.report.plots import plot_success_panels

KINDS = ("patch", "uap", "fgsm", "pgd")


@dataclass(frozen=True)
class AttackRun:
    """One metric.attack run: its label and its summary.json."""

    label: str
    summary: dict

    @property
    def kind(self) -> str:
        return self.summary["attack"]

    @property
    def purify(self) -> str:
        spec = self.summary.get("purify")
        if not spec:
            return "none"
        return f"{spec['name']} {spec.get('quality', spec.get('kernel'))}"


def panels(runs: list[AttackRun]) -> list[tuple[str, str, dict[str, tuple[list[float], list[float]]]]]:
    """(title, x label, {curve label: (budgets, success rates)}) per attack kind and goal, every run's curves in it."""
    grouped: dict[tuple[str, str], dict] = {}
    for run in runs:
        rows, name = run.summary["rows"], run.label
        if run.kind == "patch":
            area = [r["mask_area_share"] for r in rows]
            for goal, key in (("impersonation", "impersonation_success"), ("dodging", "dodging_success")):
                curves = grouped.setdefault(
                    (f"patch ({run.summary['mask']}): {goal}", "mask area (share of pixels)"), {}
                )
                curves[name] = (area, [r[key] for r in rows])
                curves[f"{name}, random views"] = (area, [r[f"{key}_eot"] for r in rows])
        elif run.kind == "uap":
            eps = [r["eps"] for r in rows]
            curves = grouped.setdefault((f"UAP: {run.summary['goal']}", "eps (pixel values, of 255)"), {})
            curves[name] = (eps, [r["success"] for r in rows])
            if "transfer" in run.summary:
                curves[f"{name}, transfer"] = (eps, [r["transfer_success"] for r in rows])
        else:
            eps = [r["eps"] for r in rows]
            for goal in ("impersonation", "dodging"):
                curves = grouped.setdefault((f"{run.kind.upper()}: {goal}", "eps (pixel values, of 255)"), {})
                curves[name] = (eps, [r[f"{goal}_success"] for r in rows])
    return [(title, xlabel, curves) for (title, xlabel), curves in grouped.items()]


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def checkpoint_name(path: str) -> str:
    """A checkpoint as <run dir>/<file> when it sits in a run's checkpoints/ folder, else its file name."""
    parts = Path(path).parts
    return f"{parts[-3]}/{parts[-1]}" if len(parts) >= 3 and parts[-2] == "checkpoints" else parts[-1]


def run_table(runs: list[AttackRun]) -> list[str]:
    """One line per run: what was attacked and its clean figures (a patch run's also under random views), then one
    line per transfer model."""
    lines = [
        "| run | attack | checkpoint | purify | clean EER | threshold | clean FAR | clean FRR | pairs turnable "
        "(impostor / genuine) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        s = run.summary
        views = (
            f" ({pct(s['clean_far_eot'])} under random views)" if "clean_far_eot" in s else "",
            f" ({pct(s['clean_frr_eot'])} under random views)" if "clean_frr_eot" in s else "",
        )
        lines.append(
            f"| {run.label} | {run.kind} | {checkpoint_name(s['checkpoint'])} | {run.purify} "
            f"| {pct(s['clean_eer'])} | {s['threshold']:.4f} | {pct(s['clean_far'])}{views[0]} "
            f"| {pct(s['clean_frr'])}{views[1]} "
            f"| {s['attackable_impostor_pairs']} / {s['attackable_genuine_pairs']} |"
        )
    transfers = [(run.label, run.summary["transfer"]) for run in runs if run.summary.get("transfer")]
    if transfers:
        lines += [
            "",
            "| run | transfer checkpoint | threshold | clean FAR | clean FRR | pairs turnable |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {label} | {checkpoint_name(t['checkpoint'])} | {t['threshold']:.4f} | {pct(t['clean_far'])} "
            f"| {pct(t['clean_frr'])} | {t.get('attackable_pairs', 'n/a')} |"
            for label, t in transfers
        ]
    return lines


def kind_table(kind: str, runs: list[AttackRun]) -> list[str]:
    """Every budget row of every run of one attack kind."""
    if kind == "patch":
        lines = [
            "| run | mask | scale | area | impersonation | imp., random views | dodging | dodg., random views "
            "| FAR after | FRR after | NPS | TV |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for run in runs:
            for r in run.summary["rows"]:
                lines.append(
                    f"| {run.label} | {run.summary['mask']} | {r['mask_scale']:g} | {pct(r['mask_area_share'])} "
                    f"| {pct(r['impersonation_success'])} | {pct(r['impersonation_success_eot'])} "
                    f"| {pct(r['dodging_success'])} | {pct(r['dodging_success_eot'])} | {pct(r['far'])} "
                    f"| {pct(r['frr'])} | {r['mean_nps']:.3f} | {r['mean_tv']:.3f} |"
                )
        return lines
    if kind == "uap":
        lines = [
            "| run | goal | eps | success | FAR or FRR after | transfer success | transfer FAR or FRR after |",
            "|---|---|---|---|---|---|---|",
        ]
        for run in runs:
            transfer = "transfer" in run.summary
            for r in run.summary["rows"]:
                lines.append(
                    f"| {run.label} | {run.summary['goal']} | {r['eps']:g} | {pct(r['success'])} "
                    f"| {pct(r['error_rate'])} | {pct(r['transfer_success']) if transfer else '-'} "
                    f"| {pct(r['transfer_error_rate']) if transfer else '-'} |"
                )
        return lines
    lines = ["| run | eps | impersonation | dodging | FAR after | FRR after |", "|---|---|---|---|---|---|"]
    for run in runs:
        for r in run.summary["rows"]:
            lines.append(
                f"| {run.label} | {r['eps']:g} | {pct(r['impersonation_success'])} "
                f"| {pct(r['dodging_success'])} | {pct(r['far'])} | {pct(r['frr'])} |"
            )
    return lines


def write_report(runs: list[AttackRun], out: Path) -> tuple[Path, Path, str]:
    """attack_report.png (every curve) and attack_report.md (every figure) in `out`; returns both and the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    figure, table = out / "attack_report.png", out / "attack_report.md"
    plot_success_panels(panels(runs), figure)
    lines = [
        "# Attack report",
        "",
        "Success: the share of the pairs decided right when clean (impostors rejected, genuines accepted) that "
        "the attack turns. Each run is judged at its checkpoint's calibrated threshold.",
        "",
        *run_table(runs),
    ]
    for kind in KINDS:
        chosen = [run for run in runs if run.kind == kind]
        if chosen:
            lines += ["", f"## {kind}", "", *kind_table(kind, chosen)]
    lines += ["", f"![success against budget]({figure.name})", ""]
    markdown = "\n".join(lines)
    tmp = table.with_suffix(".md.tmp")
    tmp.write_text(markdown)
    tmp.replace(table)
    return figure, table, markdown
