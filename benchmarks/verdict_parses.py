#!/usr/bin/env python
"""How often the two verdict parses disagree on the verifier responses of a self-reward run.

    python train_free.py --config configs/gsm8k_boxed.yaml --data.path gsm8k_test.jsonl --data.limit 3 \\
        --model.verifier_max_new_tokens 64 --model.verdict_parse paper --trainer.max_steps 2 --output_dir RUN
    python benchmarks/verdict_parses.py RUN

With ``--model.verdict_parse paper`` every verifier row runs to EOS (or its cap), as the original's, and each
judged answer's reward details hold both readings of the same four responses: ``verdicts`` (the original's:
decoded prompt + response, after the last marker, "true" anywhere) and ``response_verdicts`` (ours: the
response only, the first marker followed by True/False; None when there is none, a failed check). Every
judgement of the run is counted once (trajectory entries and their samples; a reused judgement is skipped).
Prints the counts per check and in all, and how many of the disagreements are a response without a
readable verdict that the original reads as True from its prompt.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def judgements(record: dict):
    for step in record.get("trajectory") or []:
        for sample in step.get("samples") or [step]:
            details = sample.get("reward_details") or {}
            if "response_verdicts" in details and not sample.get("reused"):
                yield details


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="--output_dir of a self-reward run made with --model.verdict_parse paper")
    args = parser.parse_args(argv)
    records = [json.loads(line) for line in (Path(args.run) / "results.jsonl").read_text().splitlines() if line]
    total, differ, unreadable_true = Counter(), Counter(), Counter()
    pairs = Counter()
    for record in records:
        for details in judgements(record):
            for check, paper in details["verdicts"].items():
                ours = details["response_verdicts"][check]
                total[check] += 1
                pairs[(paper, ours)] += 1
                if paper != bool(ours):
                    differ[check] += 1
                    unreadable_true[check] += ours is None and paper is True
    if not total:
        raise SystemExit(f"{args.run}: no judgement with both parses (run with --model.verdict_parse paper)")
    print("| check | responses | parses disagree | of which: no verdict in the response, the original reads True |")
    print("|---|---:|---:|---:|")
    for check in total:
        print(f"| {check} | {total[check]} | {differ[check]} ({100 * differ[check] / total[check]:.0f}%) | "
              f"{unreadable_true[check]} |")
    n, d = sum(total.values()), sum(differ.values())
    print(f"| all | {n} | {d} ({100 * d / n:.1f}%) | {sum(unreadable_true.values())} |")
    print("\n(original, ours) -> count:", dict(sorted(pairs.items(), key=str)))


if __name__ == "__main__":
    main()
