"""Toy Monte Carlo: events with a diphoton-like invariant mass ``m`` (GeV) and a second
discriminating variable ``x``. Signal is a narrow peak at 125 GeV with ``x`` around +1;
background falls exponentially from 100 GeV with ``x`` around -1. Each output file gets its
own random stream, so shards are independent samples.

    python simulate.py --events 2000 --seed 42 --test test.csv train-0.csv train-1.csv ...
"""

from __future__ import annotations

import argparse
import csv
import os
import random

MASS, WIDTH = 125.0, 2.0  # signal peak and resolution (GeV)
SLOPE, LOW, HIGH = 30.0, 100.0, 180.0  # background: exponential from LOW, cut at HIGH


def event(rng: random.Random, signal_fraction: float) -> tuple[float, float, int]:
    if rng.random() < signal_fraction:
        return rng.gauss(MASS, WIDTH), rng.gauss(1.0, 1.0), 1
    while True:
        mass = LOW + rng.expovariate(1.0 / SLOPE)
        if mass < HIGH:
            return mass, rng.gauss(-1.0, 1.0), 0


def write(path: str, events: int, seed: int, signal_fraction: float) -> int:
    rng = random.Random(seed)
    signal = 0
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["mass", "x", "label"])
        for _ in range(events):
            mass, x, label = event(rng, signal_fraction)
            writer.writerow([f"{mass:.4f}", f"{x:.4f}", label])
            signal += label
    return signal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000, help="events per file")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--signal-fraction", type=float, default=0.3)
    parser.add_argument("--test", required=True, help="the independent test sample")
    parser.add_argument("shards", nargs="+", help="the training shards")
    args = parser.parse_args()
    for index, path in enumerate([*args.shards, args.test]):
        signal = write(path, args.events, args.seed * 1000 + index, args.signal_fraction)
        print(f"{path}: {args.events} events, {signal} signal")
    print("simulated in", os.environ.get("BUNSHIN_JOB", "a local process"))


if __name__ == "__main__":
    main()
