"""Evaluate the ensemble of the shard classifiers (the mean of their scores) on the test
sample: ROC AUC, accuracy at a 0.5 cut, and each model's own AUC.

    python evaluate.py --test data/test.csv --output results/summary.json models/*.json
"""

from __future__ import annotations

import argparse
import json
import os

from train import load, score


def auc(scored: list[tuple[float, int]]) -> float:
    """Area under the ROC curve: the chance that a signal event outscores a background one."""
    ranked = sorted(scored)
    signal = sum(label for _, label in scored)
    background = len(scored) - signal
    rank_sum, i = 0.0, 0
    while i < len(ranked):  # average ranks over ties
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        rank_sum += sum(label for _, label in ranked[i:j]) * (i + j + 1) / 2
        i = j
    return (rank_sum - signal * (signal + 1) / 2) / (signal * background)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--test", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("models", nargs="+")
    args = parser.parse_args()
    events = load(args.test)
    models = []
    for path in args.models:
        with open(path) as source:
            models.append(json.load(source))

    def ensemble(feats: list[float]) -> float:
        return sum(score(m["weights"], m["bias"], feats) for m in models) / len(models)

    scored = [(ensemble(f), label) for f, label in events]
    summary = {
        "models": len(models),
        "test_events": len(events),
        "auc": round(auc(scored), 4),
        "accuracy": round(sum((s > 0.5) == bool(label) for s, label in scored) / len(scored), 4),
        "model_auc": [
            round(auc([(score(m["weights"], m["bias"], f), label) for f, label in events]), 4)
            for m in models
        ],
        "trained_by": [m.get("bunshin_job") for m in models],
        "evaluated_by": os.environ.get("BUNSHIN_JOB"),
    }
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as out:
        json.dump(summary, out, indent=2)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
