"""Train a logistic-regression classifier (signal vs background) on one shard, with plain
stochastic gradient descent. Features: ``x`` and the distance of the mass from the peak.

    python train.py --epochs 20 data/train-0.csv models/model-0.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random

MASS, SCALE = 125.0, 10.0


def features(mass: float, x: float) -> list[float]:
    return [x, abs(mass - MASS) / SCALE]


def score(weights: list[float], bias: float, feats: list[float]) -> float:
    z = bias + sum(w * f for w, f in zip(weights, feats, strict=True))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def load(path: str) -> list[tuple[list[float], int]]:
    with open(path, newline="") as source:
        return [
            (features(float(row["mass"]), float(row["x"])), int(row["label"]))
            for row in csv.DictReader(source)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("data")
    parser.add_argument("model")
    args = parser.parse_args()
    events = load(args.data)
    rng = random.Random(args.data)  # reproducible: the order depends on the shard only
    weights, bias = [0.0, 0.0], 0.0
    for _ in range(args.epochs):
        rng.shuffle(events)
        for feats, label in events:
            error = score(weights, bias, feats) - label
            weights = [w - args.rate * error * f for w, f in zip(weights, feats, strict=True)]
            bias -= args.rate * error
    correct = sum((score(weights, bias, f) > 0.5) == bool(label) for f, label in events)
    model = {
        "features": ["x", "abs(mass - 125) / 10"],
        "weights": weights,
        "bias": bias,
        "events": len(events),
        "train_accuracy": correct / len(events),
        # provenance: the Bunshin job that trained this model (BUNSHIN_JOB is set in jobs)
        "bunshin_job": os.environ.get("BUNSHIN_JOB"),
    }
    os.makedirs(os.path.dirname(args.model) or ".", exist_ok=True)
    with open(args.model, "w") as out:
        json.dump(model, out, indent=2)
    print(f"{args.data}: train accuracy {model['train_accuracy']:.3f}, weights {weights}")


if __name__ == "__main__":
    main()
