"""report.html: one self-contained page (inline CSS, JS and SVG; nothing is fetched) with the tables, the
accuracy-vs-iteration and equal-budget plots and every problem's trajectory (LTPO: its steps), collapsed, with
filters on CoT -> final changes.

Every text from a run (questions, model output, labels, ids) goes through `html.escape` and only into
element content, never into an attribute. To keep long
runs small, an answer text shown once in a problem is referred to afterwards ("same text as iteration 2"),
and a long stretch an iteration's text shares with the CoT is shortened to its end (the CoT is shown above).
"""

from __future__ import annotations

import json
import os
from html import escape

from lightning_latentseek.config import clears_tau
from lightning_latentseek.report_runs import Run
from lightning_latentseek.report_stats import change, solved

FILTERS = ("all", "fixed", "broken", "unchanged")
FILTER_HELP = {
    "all": "every problem",
    "fixed": "CoT wrong, final answer right",
    "broken": "CoT right, final answer wrong",
    "unchanged": "CoT and final answer both right or both wrong",
}
SHARED_PREFIX_KEEP = 160  # characters kept of a long stretch an iteration shares with the CoT
SHARED_PREFIX_ELIDE = 400  # shared stretches longer than this are shortened
SUMMARY_PRED_CHARS = 40  # characters of a prediction shown on a problem's one-line summary

CSS = """
:root { --ok: #1a7f37; --bad: #cf222e; --muted: #6e7781; --line: #d0d7de; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; padding: 16px 24px;
       max-width: 1280px; color: #1f2328; }
h1 { font-size: 22px; margin: 4px 0 12px; } h2 { font-size: 18px; margin: 28px 0 6px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
table.stats { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
table.stats th, table.stats td { border: 1px solid var(--line); padding: 3px 8px; text-align: right; white-space: nowrap; }
table.stats th { background: var(--soft); } table.stats td:first-child, table.stats th:first-child { text-align: left; }
.note { color: var(--muted); font-size: 12.5px; margin: 2px 0 8px; }
figure { margin: 8px 0; } figure svg { max-width: 640px; height: auto; }
.bar { position: sticky; top: 0; background: #fff; padding: 8px 0; border-bottom: 1px solid var(--line); z-index: 2;
       display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
.bar button { font: inherit; padding: 3px 10px; border: 1px solid var(--line); border-radius: 14px; background: #fff;
              cursor: pointer; }
.bar button[aria-pressed="true"] { background: #0969da; border-color: #0969da; color: #fff; }
.bar .sep { width: 12px; }
section.run { margin-top: 8px; }
details.problem { border: 1px solid var(--line); border-radius: 6px; margin: 4px 0; }
details.problem > summary { cursor: pointer; padding: 4px 8px; background: var(--soft); border-radius: 6px;
                            white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
details.problem[open] > summary { border-bottom: 1px solid var(--line); border-radius: 6px 6px 0 0; }
details.problem > .body { padding: 6px 12px 10px; }
.pid { font-weight: 600; } .badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px;
                                    border: 1px solid var(--line); margin: 0 4px; }
.badge.fixed { background: #dafbe1; border-color: #4ac26b; } .badge.broken { background: #ffebe9; border-color: #ff8182; }
.badge.unchanged, .badge.nocot { background: #fff; color: var(--muted); }
.ok { color: var(--ok); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; } .muted { color: var(--muted); }
pre { white-space: pre-wrap; word-break: break-word; margin: 4px 0; padding: 6px 8px; background: var(--soft);
      border-radius: 4px; font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre.latent { background: #fff8c5; }
.shared { color: #8c959f; } .elided { color: #8c959f; font-style: italic; }
.step { border-left: 3px solid var(--line); padding: 2px 0 2px 10px; margin: 8px 0; }
.step.cot { border-color: #8c959f; } .step.final { border-color: #0969da; } .step.sample { margin-left: 14px; }
.head { font-size: 13px; } .head b { font-weight: 600; }
.head i { display: inline-block; padding: 0 6px; margin: 0 2px; border-radius: 9px; font-size: 12px; border: 1px solid;
          font-style: normal; }
.head i.t { color: var(--ok); border-color: #4ac26b; } .head i.f { color: var(--bad); border-color: #ff8182; }
.head i.n { color: var(--muted); border-color: var(--line); }
.field { color: var(--muted); }
"""

JS = """
(function () {
  var FILTERS = %s;
  function apply(filter) {
    if (FILTERS.indexOf(filter) < 0) filter = "all";
    document.body.setAttribute("data-filter", filter);
    document.querySelectorAll("button[data-filter]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-filter") === filter));
    });
    document.querySelectorAll("section.run").forEach(function (run) {
      var shown = 0;
      run.querySelectorAll("details.problem").forEach(function (p) {
        var hide = filter !== "all" && p.getAttribute("data-change") !== filter;
        p.hidden = hide;
        if (!hide) shown++;
      });
      var counter = run.querySelector(".shown");
      if (counter) counter.textContent = String(shown);
    });
  }
  function fromHash() {
    // #filter=NAME[&open] filters (and opens the problems shown); #run0-p3 opens that problem
    var m = /(?:^#|&)filter=([a-z]+)/.exec(location.hash);
    apply(m ? m[1] : "all");
    if (/(?:^#|&)open(?:&|$)/.test(location.hash)) openShown(true);
    var target = location.hash.length > 1 && !m ? document.getElementById(location.hash.slice(1)) : null;
    if (target && target.tagName === "DETAILS") { target.open = true; target.scrollIntoView(); }
  }
  function openShown(open) {
    document.querySelectorAll("details.problem").forEach(function (p) { if (!p.hidden) p.open = open; });
  }
  document.addEventListener("click", function (e) {
    var b = e.target.closest("button");
    if (!b) return;
    if (b.hasAttribute("data-filter")) {
      var filter = b.getAttribute("data-filter");
      history.replaceState(null, "", "#filter=" + filter);
      apply(filter);
    } else if (b.hasAttribute("data-open")) {
      openShown(b.getAttribute("data-open") === "1");
    }
  });
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
"""


CHECK, CROSS = "\u2713", "\u2717"


# ------------------------------------------------------------------------------------------ pieces
def _esc(value) -> str:
    """Any value as HTML element content (attributes are never filled with run data)."""
    return escape(str(value), quote=False)


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _mark(correct) -> str:
    if correct is None:
        return '<span class="muted">?</span>'
    return f'<span class="ok">{CHECK}</span>' if correct else f'<span class="bad">{CROSS}</span>'


def _pred(pred, limit: bool = False) -> str:
    if pred is None:
        return '<span class="muted">no answer</span>'
    return f"<b>{_esc(_short(pred) if limit else pred)}</b>"


def _short(value, limit: int = SUMMARY_PRED_CHARS) -> str:
    text = str(value)
    return text[:limit] + "\u2026" if len(text) > limit else text


def _verdicts(details) -> str:
    verdicts = (details or {}).get("verdicts") if isinstance(details, dict) else None
    if isinstance(verdicts, list):
        verdicts = {f"check {i + 1}": v for i, v in enumerate(verdicts)}
    if not isinstance(verdicts, dict) or not verdicts:
        return ""
    chips = []
    for name, verdict in verdicts.items():
        kind, sign = ("t", CHECK) if verdict is True else ("f", CROSS) if verdict is False else ("n", "?")
        chips.append(f'<i class="{kind}">{_esc(name)} {sign}</i>')  # the verdict: True, False, None (unreadable)
    return " verdicts " + "".join(chips)


def _reward(reward, tau: float | None) -> str:
    if reward is None:
        return ""
    above = tau is not None and clears_tau(reward, tau)
    return f' · R <b>{_num(float(reward))}</b>' + (' <span class="ok">&gt; &tau;</span>' if above else "")


def _shared_prefix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def _text(text: str | None, cot: str | None = None) -> str:
    """An answer text as <pre>; the stretch it shares with the CoT is greyed (and shortened when long)."""
    if text is None:
        return '<p class="muted">(no text)</p>'
    shared = _shared_prefix(cot, text) if cot and text != cot else 0
    if shared == 0:
        return f"<pre>{_esc(text)}</pre>"
    head = ""
    kept = text[:shared]
    if shared > SHARED_PREFIX_ELIDE:
        kept = text[shared - SHARED_PREFIX_KEEP:shared]
        head = (f'<span class="elided">[first {shared - SHARED_PREFIX_KEEP} characters as in the CoT]</span>'
                "\u2026")
    return (f'<pre>{head}<span class="shared">{_esc(kept)}</span>'
            f"{_esc(text[shared:])}</pre>")


def _head(title: str, entry: dict, tau: float | None) -> str:
    parts = [f"<b>{title}</b>", f" · pred {_pred(entry.get('pred'))} {_mark(entry.get('correct'))}",
             _reward(entry.get("reward"), tau), _verdicts(entry.get("reward_details"))]
    extras = []
    if entry.get("tokens") is not None:
        extras.append(f"{entry['tokens']} tokens")
    if entry.get("hit_cap"):
        extras.append("hit the token cap")
    if entry.get("reused"):
        extras.append("reused")
    for key in ("loss", "step_norm"):
        if entry.get(key) is not None:
            extras.append(f"{key} {_num(float(entry[key]), 4)}")
    confidence = (entry.get("reward_details") or {}).get("confidence") if isinstance(
        entry.get("reward_details"), dict) else None
    if confidence is not None:
        extras.append(f"confidence {_num(float(confidence), 3)}")
    if extras:
        parts.append(' <span class="field">· ' + " · ".join(_esc(e) for e in extras) + "</span>")
    return '<div class="head">' + "".join(parts) + "</div>"


class _Shown:
    """Texts already shown in one problem, so a repeated one is referred to instead of repeated."""

    def __init__(self):
        self.where: dict[str, str] = {}

    def text(self, text: str | None, name: str, cot: str | None = None) -> str:
        if text is not None and text in self.where:
            return f'<p class="muted">same text as {_esc(self.where[text])}</p>'
        if text is not None:
            self.where[text] = name
        return _text(text, cot)


def _step(entry: dict, title: str, name: str, shown: _Shown, tau, cot: str | None, css: str = "") -> str:
    out = [f'<div class="step{css}">', _head(title, entry, tau)]
    if entry.get("latent_text") is not None:
        out.append('<div class="field">decoded latent tokens</div>'
                   f'<pre class="latent">{_esc(entry["latent_text"])}</pre>')
    out.append(shown.text(entry.get("text"), name, cot))
    for k, sample in enumerate(entry.get("samples") or []):
        out.append(_step(sample, f"sample {k}", f"{name}, sample {k}", shown, tau, cot, " sample"))
    out.append("</div>")
    return "".join(out)


def steps_html(steps: list[dict]) -> str:
    """LTPO's steps (no answer is decoded during its loop): confidence, the baseline, sigma, how far H moved, and
    which step became the best."""
    header = ["step", "confidence", "baseline", "sigma", "step norm", "best so far"]
    rows = []
    for step in steps:
        baseline = step.get("baseline")
        if isinstance(baseline, list):
            baseline = "loo " + ", ".join(_num(float(b), 3) for b in baseline)
        elif baseline is not None:
            baseline = _num(float(baseline), 4)
        confidence = _num(float(step["confidence"]), 4) if step.get("confidence") is not None else "-"
        if step.get("candidates"):
            confidence += " (of " + ", ".join(_num(float(c), 3) for c in step["candidates"]) + ")"
        rows.append([str(step.get("iteration", "?")), confidence, baseline or "-",
                     _num(step.get("sigma"), 4), _num(step.get("step_norm"), 4), CHECK if step.get("best") else ""])
    return "<h3>Steps (no answer is decoded during the loop)</h3>" + table_html(header, rows)


def problem_html(record: dict, key: str, tau: float | None) -> str:
    """One problem, collapsed: question, ground truth, CoT, every iteration (and sample), final answer."""
    kind = change(record)
    trajectory = record.get("trajectory") or []
    rewards = [e.get("reward") for e in trajectory if e.get("reward") is not None]
    summary = [f'<span class="pid">{_esc(record.get("id"))}</span>',
               f'<span class="badge {kind}">{"no CoT" if kind == "nocot" else kind}</span>']
    if record.get("cot_text") is not None and record.get("method") != "cot":
        summary.append(f"CoT {_pred(record.get('cot_pred'), limit=True)} {_mark(record.get('cot_correct'))}"
                       " → ")
    summary.append(f"final {_pred(record.get('pred'), limit=True)} {_mark(record.get('correct'))}")
    summary.append(f' <span class="muted">· truth {_esc(_short(record.get("ground_truth")))}')
    if record.get("iterations"):
        summary.append(f" · {record['iterations']} it.")
    if len(rewards) > 1:
        summary.append(f" · R {_num(float(rewards[0]))} → {_num(float(rewards[-1]))}")
    if record.get("stop_reason"):
        summary.append(f" · {_esc(record['stop_reason'])}")
    summary.append("</span>")

    shown = _Shown()
    cot = record.get("cot_text")
    body = ['<h3>Question</h3>', f"<pre>{_esc(record.get('question') or '')}</pre>",
            f'<div>ground truth <b>{_esc(record.get("ground_truth"))}</b></div>']
    if cot is not None:
        cot_entry = {**(trajectory[0] if trajectory else {}), "text": cot,
                     "pred": record.get("cot_pred"), "correct": record.get("cot_correct")}
        if "tokens" not in cot_entry and record.get("cot_tokens") is not None:
            cot_entry["tokens"] = record["cot_tokens"]
        body.append(_step(cot_entry, "CoT (iteration 0)", "the CoT", shown, tau, None, " cot"))
    for entry in trajectory[1:]:
        i = entry.get("iteration", "?")
        body.append(_step(entry, f"iteration {_esc(i)}", f"iteration {i}", shown, tau, cot))
    for k, sample in enumerate(record.get("samples") or []):
        body.append(_step(sample, f"sample {k}", f"sample {k}", shown, tau, None, " sample"))
    if record.get("steps"):
        body.append(steps_html(record["steps"]))
    final = {"text": record.get("text"), "pred": record.get("pred"), "correct": record.get("correct"),
             "tokens": record.get("tokens"), "hit_cap": record.get("hit_cap")}
    body.append(_step(final, "final answer", "the final answer", shown, None, cot, " final"))
    return (f'<details class="problem" id="{key}" data-change="{kind}"><summary>{"".join(summary)}</summary>'
            f'<div class="body">{"".join(body)}</div></details>')


def table_html(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="stats"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def run_html(run: Run, index: int) -> str:
    """A run's section: its label, counts per filter, its configuration and every problem."""
    records = solved(run.records)
    counts = {name: sum(change(r) == name for r in records) for name in ("fixed", "broken", "unchanged", "nocot")}
    skipped = len(run.records) - len(records)
    parts = [f'<section class="run" id="run{index}">', f"<h2>{_esc(run.label)}</h2>",
             f'<div class="note">{_esc(run.directory)} · showing <span class="shown">{len(records)}'
             f"</span> of {len(records)} problems · fixed {counts['fixed']} · broken {counts['broken']}"
             f" · unchanged {counts['unchanged']}"
             + (f" · no CoT {counts['nocot']}" if counts["nocot"] else "")
             + (f" · {skipped} skipped rows" if skipped else "") + "</div>"]
    if run.config:
        parts.append("<details><summary class=\"note\">configuration</summary>"
                     f"<pre>{_esc(json.dumps(run.config, indent=1, ensure_ascii=False))}</pre></details>")
    if not run.records:
        parts.append('<p class="muted">no results.jsonl: no trajectories to show</p>')
    for k, record in enumerate(records):
        parts.append(problem_html(record, f"run{index}-p{k}", run.tau))
    parts.append("</section>")
    return "\n".join(parts)


def render_html(runs: list[Run], table: tuple[list[str], list[list[str]]], plot_svg: str | list[str],
                self_table: tuple[list[str], list[list[str]]] | None = None,
                title: str = "lightning-latentseek report",
                budget_table: tuple[list[str], list[list[str]]] | None = None) -> str:
    """The whole page. `table`, `self_table` and `budget_table` are (header, rows) of already formatted cells;
    `plot_svg` is an inline <svg> element, or several (the accuracy-vs-iteration plot, then the equal-budget one)."""
    totals = {name: sum(change(r) == name for run in runs for r in solved(run.records)) for name in FILTERS[1:]}
    totals["all"] = sum(len(solved(run.records)) for run in runs)
    buttons = "".join(
        f'<button type="button" data-filter="{name}" aria-pressed="{str(name == "all").lower()}" '
        f'title="{escape(FILTER_HELP[name])}">{name} ({totals[name]})</button>' for name in FILTERS)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>{_esc(title)}</title><style>{CSS}</style></head>",
        '<body data-filter="all">', f"<h1>{_esc(title)}</h1>",
        table_html(*table),
        '<div class="note">accuracy with its Wilson 95% interval; reward calls = answers judged per problem; '
        "tokens and seconds are means per problem.</div>",
    ]
    if self_table is not None:
        parts += ["<h3>Self-reward accuracy</h3>", table_html(*self_table),
                  '<div class="note">over every judged answer (CoT, iterations, samples) with verdicts: agreement = '
                  "fraction where (R &gt; &tau;) equals correctness; precision / recall of R &gt; &tau; as a "
                  "detector of correct answers; per check: fraction where (verdict is True) equals correctness "
                  "(an unreadable verdict counts as False).</div>"]
    plots = [plot_svg] if isinstance(plot_svg, str) else list(plot_svg)
    parts.append(f"<figure>{plots[0]}</figure>")
    if budget_table is not None or len(plots) > 1:
        parts.append("<h2>Equal budget</h2>")
        if budget_table is not None:
            parts += [table_html(*budget_table),
                      '<div class="note">accuracy when every problem spends at most b answers judged: a search '
                      "stopped at its last iteration within b, returning the answer it held there; Best-of-N and "
                      "self-consistency with their first b samples; methods without a reward count the answers they "
                      "produce (CoT and LTPO: one).</div>"]
        parts += [f"<figure>{svg}</figure>" for svg in plots[1:]]
    parts += [
              f'<div class="bar">filter: {buttons}<span class="sep"></span>'
              '<button type="button" data-open="1">expand shown</button>'
              '<button type="button" data-open="0">collapse all</button></div>']
    parts += [run_html(run, i) for i, run in enumerate(runs)]
    parts.append(f"<script>{JS % json.dumps(list(FILTERS))}</script></body></html>")
    return "\n".join(parts) + "\n"
