"""Side-by-side report of runs: ``python -m lightning_latentseek.report [NAME=]DIR ... [--output DIR]``.

Reads each run's summary.json and results.jsonl and writes, into ``--output``:

- ``report.md``: one table row per run (and the self-reward accuracy of self-reward runs);
- ``accuracy_vs_iteration.png``: the paper's Figure 2 for your runs;
- ``equal_budget.png``: accuracy against answers judged and against tokens generated per problem, every run at every
  budget (Best-of-N and self-consistency at N = 1..N_max, searches stopped at each budget: `report_budget`);
- ``report.html``: one self-contained page with the tables, the plots and every problem's trajectory;

and prints the tables with rich. ``NAME=DIR`` names a run in the tables (default: method + reward (dir)).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from lightning_latentseek.config import SeekConfig
from lightning_latentseek.report_budget import BudgetPoint, budget_curve, budget_table
from lightning_latentseek.report_runs import ReportInputError, Run, load_runs
from lightning_latentseek.report_stats import self_reward_accuracy

# (title, key in the run's stats, digits of a float)
COLUMNS = [
    ("run", None, 0),
    ("n", "n", 0),
    ("accuracy", "accuracy", 3),
    ("95% CI", "accuracy_ci95", 3),
    ("CoT acc.", "cot_accuracy", 3),
    ("mean iters", "mean_iterations", 3),
    ("reward calls", "mean_reward_calls", 2),
    ("solver tok.", "mean_solver_tokens", 1),
    ("verifier tok.", "mean_verifier_tokens", 1),
    ("s / problem", "seconds_per_problem", 2),
]
SELF_REWARD_COLUMNS = ["run", "judged", "agreement", "precision", "recall"]


def _cell(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_cell(v, digits) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def rows(runs: list[tuple[str, dict]]) -> list[list[str]]:
    """(label, stats) pairs -> formatted cells of the run table."""
    return [[name] + [_cell(stats.get(key), digits) for _, key, digits in COLUMNS[1:]] for name, stats in runs]


def _markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def markdown_table(runs: list[tuple[str, dict]]) -> str:
    """The run table in Markdown; `runs` are (label, stats) pairs (a summary.json is a valid stats dict)."""
    return _markdown([title for title, _, _ in COLUMNS], rows(runs))


def _rich_table(title: str, header: list[str], body: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # logs and pipes: the table at its natural width, never squeezed or cut
        console = Console(width=1000)
    table = Table(title=title)
    for name in header:
        table.add_column(name, no_wrap=True)
    for row in body:
        table.add_row(*row)
    console.print(table)


def print_table(runs: list[tuple[str, dict]]) -> None:
    _rich_table("lightning-latentseek", [title for title, _, _ in COLUMNS], rows(runs))


# ------------------------------------------------------------------------------------- self-reward
def self_reward_table(runs: list[Run]) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of the self-reward accuracy of the runs whose reward is ``self``; None if there are none."""
    found = [(run.label, self_reward_accuracy(run.records, run.tau if run.tau is not None else SeekConfig.tau))
             for run in runs if run.reward == "self"]
    if not found:
        return None
    checks: list[str] = []
    for _, acc in found:
        checks += [name for name in acc["checks"] if name not in checks]
    header = SELF_REWARD_COLUMNS + checks
    body = [[label, str(acc["n"]), _cell(acc["agreement"]), _cell(acc["precision"]), _cell(acc["recall"])]
            + [_cell(acc["checks"].get(name)) for name in checks] for label, acc in found]
    return header, body


# ------------------------------------------------------------------------------------- plot
def _plot_label(name: str) -> str:
    return name.replace("$", r"\$")  # matplotlib reads $...$ as mathtext


def _style(plt, index: int) -> tuple[str, str, str, str]:
    """The `index`-th run's colour, line style, marker and single-point marker: past the colour cycle, the colours
    come again with another line style and markers, so no two runs of a plot look alike."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    turn = index // len(colors) % 3
    return colors[index % len(colors)], ("-", "--", "-.")[turn], ("o", "^", "v")[turn], ("s", "D", "P")[turn]


def plot_accuracy_vs_iteration(runs: list[tuple[str, dict]], path: Path | None = None, fmt: str = "png"):
    """Accuracy of the held answer after i iterations, one line per run (flat for baselines).

    Saved to `path` when given (returns it); otherwise returns the figure as `fmt` bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    horizon = max([len(s.get("accuracy_by_iteration") or []) for _, s in runs] + [1])
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "lightning-latentseek"}):
        fig, ax = plt.subplots(figsize=(8.5, 4))
        for index, (name, summary) in enumerate(runs):
            color, style, marker, _ = _style(plt, index)
            curve = summary.get("accuracy_by_iteration") or []
            if curve:
                ax.plot(range(len(curve)), curve, marker=marker, linestyle=style, color=color, label=_plot_label(name))
            elif summary.get("accuracy") is not None:
                ax.plot([0, max(horizon - 1, 1)], [summary["accuracy"]] * 2, linestyle=":", color=color,
                        label=_plot_label(name))
        ax.set_xlabel("iteration")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")  # beside the curves
        return _save(fig, path, fmt)


def _save(fig, path: Path | None, fmt: str):
    """Write `fig` to `path` (returns it), or return its bytes in `fmt` (no date in an SVG: stable output)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    plt.close(fig)
    return buffer.getvalue()


def plot_equal_budget(curves: list[tuple[str, list[BudgetPoint]]], path: Path | None = None, fmt: str = "png"):
    """Two panels: accuracy against answers judged per problem, and against tokens generated per problem (solver +
    verifier, log scale); one curve per run (`report_budget.budget_curve`). A run of one point (CoT, LTPO) is a
    marker with a dotted line to the right: what it reaches at any larger budget.

    Saved to `path` when given (returns it); otherwise returns the figure as `fmt` bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "lightning-latentseek"}):
        fig, (by_answers, by_tokens) = plt.subplots(1, 2, figsize=(12, 4.2))
        for index, (name, points) in enumerate(curves):
            color, style, marker, single = _style(plt, index)
            label = _plot_label(name)
            for axis, x in ((by_answers, [p.answers for p in points]), (by_tokens, [p.tokens for p in points])):
                kept = [(xi, p.accuracy) for xi, p in zip(x, points) if xi is not None]
                if not kept:
                    continue
                xs, ys = zip(*kept)
                if len(kept) == 1:
                    axis.plot(xs, ys, marker=single, linestyle="none", color=color, label=label)
                    axis.axhline(ys[0], xmin=0, xmax=1, linestyle=":", linewidth=1, color=color)
                else:
                    axis.plot(xs, ys, marker=marker, markersize=3, linestyle=style, drawstyle="steps-post"
                              if axis is by_answers else "default", color=color, label=label)
        by_answers.set_xlabel("answers judged per problem (budget)")
        by_tokens.set_xlabel("tokens generated per problem (solver + verifier)")
        by_tokens.set_xscale("log")
        for axis in (by_answers, by_tokens):
            axis.set_ylabel("accuracy")
            axis.set_ylim(-0.02, 1.02)
            axis.grid(alpha=0.3)
        handles, labels = by_answers.get_legend_handles_labels()  # every run has an answers curve
        if handles:  # beside the tokens panel (a run whose records give no tokens is only in the answers panel)
            by_tokens.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
        return _save(fig, path, fmt)


def inline_svg(svg: bytes) -> str:
    """matplotlib's SVG file -> an <svg> element to inline in HTML (XML prolog and doctype dropped)."""
    text = svg.decode("utf-8")
    return text[text.index("<svg"):]


# ------------------------------------------------------------------------------------- main
BUDGET_NOTE = ("Accuracy when every problem spends at most b answers judged (a search stopped at its last iteration "
               "within b; Best-of-N and self-consistency with the first b samples; methods without a reward count "
               "the answers they produce)")


def write_report(runs: list[Run], out: Path) -> list[Path]:
    """report.md, accuracy_vs_iteration.png, equal_budget.png and report.html for `runs` in `out`; returns the
    paths."""
    from lightning_latentseek.report_html import render_html

    out.mkdir(parents=True, exist_ok=True)
    labelled = [(run.label, run.stats) for run in runs]
    curves = [(run.label, budget_curve(run.records, run.answer_selection)) for run in runs]
    budget = budget_table(curves) if any(points for _, points in curves) else None  # None: no run has records
    self_table = self_reward_table(runs)
    markdown = markdown_table(labelled)
    if budget is not None:
        markdown += f"\n\n{BUDGET_NOTE}:\n\n" + _markdown(*budget)
    if self_table is not None:
        markdown += "\n\nSelf-reward accuracy (agreement of R > tau and of each check with the ground truth):\n\n"
        markdown += _markdown(*self_table)
    paths = [out / "report.md", out / "accuracy_vs_iteration.png", out / "equal_budget.png", out / "report.html"]
    paths[0].write_text(markdown + "\n", encoding="utf-8")
    plot_accuracy_vs_iteration(labelled, paths[1])
    plot_equal_budget(curves, paths[2])
    plots = [inline_svg(plot_accuracy_vs_iteration(labelled, fmt="svg")),
             inline_svg(plot_equal_budget(curves, fmt="svg"))]
    paths[3].write_text(render_html(runs, ([t for t, _, _ in COLUMNS], rows(labelled)), plots, self_table,
                                    budget_table=budget), encoding="utf-8")
    print_table(labelled)
    if budget is not None:
        _rich_table("accuracy at a budget of b answers judged per problem", *budget)
    if self_table is not None:
        _rich_table("self-reward accuracy", *self_table)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lightning_latentseek.report",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="[NAME=]DIR", help="output directories of train_free.py runs")
    parser.add_argument("--output", default=".", help="where report.md, report.html and the plot go")
    args = parser.parse_args(argv)
    try:
        runs = load_runs(args.runs)
    except ReportInputError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        paths = write_report(runs, Path(args.output))
    except OSError as err:  # --output not writable, a file, disk full...
        print(f"{parser.prog}: error: {args.output}: cannot write the report ({err.strerror or err})", file=sys.stderr)
        raise SystemExit(2) from None
    print("wrote " + ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
