"""Seeded draws for simulations that count requests instead of serving them one by one.

`binomial(rng, trials, p)`: how many of `trials` requests fail at error rate `p`, drawn by
geometric skips between failures (fast for the small rates releases see). The compare-gate
benchmark (benchmarks/analysis.py) and the statistics tests that reproduce its cases draw with
it, so a seed gives both the same requests.
"""

from __future__ import annotations

import math
import random


def binomial(rng: random.Random, trials: int, p: float) -> int:
    """Events in `trials` Bernoulli(p) trials, by geometric skips (fast for small p)."""
    if p <= 0:
        return 0
    if p >= 1:
        return trials
    events, position, log_miss = 0, 0, math.log1p(-p)
    while True:
        position += int(math.log(1.0 - rng.random()) / log_miss) + 1
        if position > trials:
            return events
        events += 1
