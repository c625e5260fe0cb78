"""Side-by-side report of runs: ``python -m lightning_latentseek.report OUT1 OUT2 ... [--output DIR]``.

Writes ``report.md`` (one row per run) and ``accuracy_vs_iteration.png`` (the paper's Figure 2
for your runs), and prints the table with rich.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = [
    ("run", None),
    ("n", "n"),
    ("accuracy", "accuracy"),
    ("95% CI", "accuracy_ci95"),
    ("CoT acc.", "cot_accuracy"),
    ("mean iters", "mean_iterations"),
    ("solver tok.", "mean_solver_tokens"),
    ("verifier tok.", "mean_verifier_tokens"),
    ("s / problem", "seconds_per_problem"),
]


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def rows(runs: list[tuple[str, dict]]) -> list[list[str]]:
    return [[name] + [_cell(summary.get(key)) for _, key in COLUMNS[1:]] for name, summary in runs]


def markdown_table(runs: list[tuple[str, dict]]) -> str:
    header = [title for title, _ in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(runs)]
    return "\n".join(lines)


def print_table(runs: list[tuple[str, dict]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # logs and pipes: do not squeeze the table into 80 columns
        console = Console(width=160)
    table = Table(title="lightning-latentseek")
    for title, _ in COLUMNS:
        table.add_column(title, no_wrap=True)
    for row in rows(runs):
        table.add_row(*row)
    console.print(table)


def plot_accuracy_vs_iteration(runs: list[tuple[str, dict]], path: Path) -> Path:
    """Accuracy of the held answer after i iterations, one line per run (flat for baselines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizon = max([len(s.get("accuracy_by_iteration") or []) for _, s in runs] + [1])
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, summary in runs:
        curve = summary.get("accuracy_by_iteration") or []
        if curve:
            ax.plot(range(len(curve)), curve, marker="o", label=name)
        elif summary.get("accuracy") is not None:
            ax.plot([0, max(horizon - 1, 1)], [summary["accuracy"]] * 2, linestyle="--", label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def load_runs(dirs: list[str]) -> list[tuple[str, dict]]:
    runs = []
    for d in dirs:
        path = Path(d) / "summary.json"
        if not path.is_file():
            raise SystemExit(f"{path}: no summary.json (has the run finished?)")
        summary = json.loads(path.read_text())
        runs.append((f"{summary.get('method') or 'run'} ({Path(d).name})", summary))
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="output directories of train_free.py runs")
    parser.add_argument("--output", default=".", help="where report.md and accuracy_vs_iteration.png go")
    args = parser.parse_args(argv)
    runs = load_runs(args.runs)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(markdown_table(runs) + "\n")
    plot_accuracy_vs_iteration(runs, out / "accuracy_vs_iteration.png")
    print_table(runs)
    print(f"wrote {out / 'report.md'} and {out / 'accuracy_vs_iteration.png'}")


if __name__ == "__main__":
    main()
