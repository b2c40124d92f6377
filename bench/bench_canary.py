"""The canary judge against Kayenta's classifier: A/A and A/B on the same generated data.

Both judges see the same trials (each trial's data comes from its own seed, whoever judges
it). releasegate's judge is ``releasegate.canary.compare`` with its defaults (alpha 0.01
one-sided, bootstrap off since it is evidence only); Kayenta's is the re-implementation in
``releasegate.canary.kayenta`` (NetflixACAJudge: Mann-Whitney at confidence 0.98, tolerance
0.25, mean-ratio effect size 1.0), with ``direction: increase`` as a team would set it.

- Latency: per-request samples, lognormal with median 50 ms and sigma 0.6 (p95 ~134 ms), to
  both judges. A regression makes every request 10/25/50 % slower.
- Errors: each side's requests in intervals of 100 (a 1-minute step at 100 requests/minute);
  releasegate gets the counts (errors, requests), Kayenta the series of per-interval error
  percentages, which is what a metric store gives it. Baselines of 1 % and 0.1 %; a regression
  doubles or quintuples the rate.

A/A: the false-positive rate (FAILED for releasegate, High for Kayenta) at three sizes per side.
A/B: the smallest size per side with 80 % detection, searched on a grid (steps of about
sqrt 2), interpolated in log size between the two grid points around 80 %. "Matched" runs
Kayenta at the lowest confidence level at which its pooled A/A false-positive rate over the three
sizes is at most 1 % (releasegate's alpha), found by bisection on the first 1,000 A/A trials
per size, then measured with the real classifier on all of them. Each detection size also gets
its own A/A false-positive rate (fresh trials at that size), since a rank test's rate on counts
moves with the sample size. Usage:

    .venv/bin/python bench/bench_canary.py [--trials 2000] [--seed 1] [--quick] [--jobs 2]

Targets: releasegate's A/A false-positive rate <= 1 %; fewer samples than Kayenta for 80 %
detection at the same false-positive rate; none of Kayenta's known false passes passes.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from releasegate.canary import MetricPolicy, RateData, SampleData, Verdict, compare, judge
from releasegate.canary import kayenta as kay

MEDIAN_MS, SIGMA = 50.0, 0.6
PER_INTERVAL = 100
TARGET_FPR = 0.01
#: A/A trials per size the matched confidence is calibrated on (the first of the A/A table's).
CALIBRATION_TRIALS = 1000
DETECTION = 0.8
RG_LATENCY = MetricPolicy("latency", resamples=0)
RG_ERRORS = MetricPolicy("errors")
K_METRIC = kay.KayentaMetric("metric", direction="increase")

LATENCY_GRID = [30, 42, 60, 85, 120, 170, 240, 340, 480, 680, 960, 1360, 1920, 2720, 3840, 5440]
RATE_GRID = [
    *(200, 300, 400, 600, 800, 1100, 1600, 2300, 3200, 4500, 6400, 9100, 12800, 18100),
    *(25600, 36200, 51200, 72400, 102400, 144800, 204800),
]


@dataclass(frozen=True)
class Family:
    """One kind of data: its A/A sizes and its regressions."""

    key: int
    name: str
    rate: float | None  # None: latency
    aa_sizes: tuple[int, ...]
    grid: tuple[int, ...]
    factors: tuple[float, ...]


FAMILIES = (
    Family(
        0,
        "latency, lognormal median 50 ms",
        None,
        (50, 200, 1000),
        tuple(LATENCY_GRID),
        (1.10, 1.25, 1.50),
    ),
    Family(1, "errors, 1% baseline", 0.01, (1000, 5000, 20000), tuple(RATE_GRID), (2.0, 5.0)),
    Family(2, "errors, 0.1% baseline", 0.001, (1000, 5000, 20000), tuple(RATE_GRID), (2.0, 5.0)),
)


def trial_data(
    family: Family, factor: float, n: int, trial: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(canary, baseline) of one trial: latencies in ms, or per-interval error counts."""
    rng = np.random.default_rng([seed, family.key, int(factor * 1000), n, trial])
    if family.rate is None:
        baseline = rng.lognormal(math.log(MEDIAN_MS), SIGMA, n)
        canary = rng.lognormal(math.log(MEDIAN_MS), SIGMA, n) * factor
        return canary, baseline
    intervals = n // PER_INTERVAL
    baseline = rng.binomial(PER_INTERVAL, family.rate, intervals).astype(np.float64)
    canary = rng.binomial(PER_INTERVAL, family.rate * factor, intervals).astype(np.float64)
    return canary, baseline


def releasegate_verdict(family: Family, canary: np.ndarray, baseline: np.ndarray) -> Verdict:
    if family.rate is None:
        return compare(RG_LATENCY, SampleData(canary), SampleData(baseline)).verdict
    n = len(canary) * PER_INTERVAL
    return _rate_verdict(int(canary.sum()), int(baseline.sum()), n)


_RATE_CACHE: dict[tuple[int, int, int], Verdict] = {}


def _rate_verdict(errors_c: int, errors_b: int, n: int) -> Verdict:
    key = (errors_c, errors_b, n)  # compare is a pure function of the counts
    if key not in _RATE_CACHE:
        _RATE_CACHE[key] = compare(RG_ERRORS, RateData(errors_c, n), RateData(errors_b, n)).verdict
    return _RATE_CACHE[key]


def kayenta_high(canary: np.ndarray, baseline: np.ndarray, confidence: float) -> bool:
    # Per-interval counts of 100 requests are the error percentages Kayenta would see.
    result = kay.classify_metric(
        K_METRIC, control=baseline, experiment=canary, confidence=confidence
    )
    return result.label is kay.Label.HIGH


class _KayentaTrial:
    """One A/A trial prepared for Kayenta at any confidence: its classifier's decision is
    ``lower bound at z_c > 0.25 * |estimate|`` once the effect-size and equal-data rules pass,
    and only the lower bound depends on the confidence."""

    def __init__(self, canary: np.ndarray, baseline: np.ndarray) -> None:
        self.canary, self.baseline = canary, baseline
        self.never = bool(
            np.array_equal(np.sort(canary), np.sort(baseline))
            or len(np.unique(np.concatenate((canary, baseline)))) == 1
        )
        ratio = kay.mean_ratio(baseline, canary)
        self.never = self.never or (not math.isnan(ratio) and ratio < 1.0)
        # Single values on both sides: Kayenta adds noise first; rare enough to run it whole.
        self.noisy = len(np.unique(canary)) == 1 and len(np.unique(baseline)) == 1
        self.test: kay.MannWhitney | None = None
        self.threshold = 0.0
        if not self.never and not self.noisy:
            self.test = kay.MannWhitney(canary, baseline)
            self.threshold = kay.NETFLIX_TOLERANCE * abs(self.test.estimate())

    def high(self, confidence: float) -> bool:
        if self.never:
            return False
        if self.test is None:
            return kayenta_high(self.canary, self.baseline, confidence)
        z = -float(stats.norm.ppf((1 - confidence) / 2))
        return self.test.bound(z) > self.threshold


def calibrate(args: tuple[int, int, int]) -> tuple[int, float]:
    """The lowest confidence (to 1e-3) at which Kayenta's pooled A/A false-positive rate over
    the family's sizes is at most 1 %: bisection, the rate falling as the confidence rises.
    Every step decides every trial again: on counts Brent's tolerance makes a trial's High
    flip back and forth near a discontinuity, so one trial's answers are not monotone."""
    key, trials, seed = args
    family = FAMILIES[key]
    prepared = [
        _KayentaTrial(*trial_data(family, 1.0, n, t, seed))
        for n in family.aa_sizes
        for t in range(trials)
    ]
    allowed = math.floor(TARGET_FPR * len(prepared))
    low, high = 0.5, 0.999
    if sum(p.high(low) for p in prepared) <= allowed:
        return key, low
    while high - low > 1e-3:
        middle = (low + high) / 2
        if sum(p.high(middle) for p in prepared) <= allowed:
            high = middle
        else:
            low = middle
    return key, high


@dataclass(frozen=True)
class AAResult:
    key: int
    n: int
    trials: int
    failed: int
    not_passed: int
    high: int


@dataclass(frozen=True)
class Chain:
    key: int
    factor: float
    judge: str
    points: list[tuple[int, float]]
    fpr: float


def aa_task(args: tuple[int, int, int, int]) -> AAResult:
    key, n, trials, seed = args
    family = FAMILIES[key]
    failed = not_passed = high = 0
    for t in range(trials):
        canary, baseline = trial_data(family, 1.0, n, t, seed)
        verdict = releasegate_verdict(family, canary, baseline)
        failed += verdict is Verdict.FAILED
        not_passed += verdict is not Verdict.PASSED
        high += kayenta_high(canary, baseline, kay.NETFLIX_CONFIDENCE)
    return AAResult(key, n, trials, failed, not_passed, high)


def aa_matched_task(args: tuple[int, int, int, int, float]) -> tuple[int, int, int]:
    key, n, trials, seed, confidence = args
    family = FAMILIES[key]
    high = sum(
        kayenta_high(*trial_data(family, 1.0, n, t, seed), confidence) for t in range(trials)
    )
    return key, n, high


def _detector(
    family: Family, judge_name: str, confidence: float
) -> Callable[[np.ndarray, np.ndarray], bool]:
    if judge_name == "releasegate":
        return lambda c, b: releasegate_verdict(family, c, b) is Verdict.FAILED
    return lambda c, b: kayenta_high(c, b, confidence)


def detection_chain(args: tuple[int, float, str, int, int, int, float, bool]) -> Chain:
    """Detection rates up the grid until one reaches 80 %, then the A/A false-positive rate
    at that size (on trials of their own)."""
    key, factor, judge_name, trials, fpr_trials, seed, confidence, quick = args
    family = FAMILIES[key]
    grid = family.grid[::2] if quick else family.grid
    detects = _detector(family, judge_name, confidence)
    points: list[tuple[int, float]] = []
    for n in grid:
        rate = sum(detects(*trial_data(family, factor, n, t, seed)) for t in range(trials)) / trials
        points.append((n, rate))
        if rate >= DETECTION:
            break
    n_last = points[-1][0]
    aa_seed = seed + 7919  # A/A trials distinct from those of the A/A table
    false = sum(detects(*trial_data(family, 1.0, n_last, t, aa_seed)) for t in range(fpr_trials))
    return Chain(key, factor, judge_name, points, false / fpr_trials)


def n80(points: list[tuple[int, float]]) -> tuple[int | None, str]:
    """The size for 80 % detection, interpolated in log size between the grid points around
    it: (size or None, as printed)."""
    (n1, r1) = points[-1]
    if r1 < DETECTION:
        return None, f"> {n1:,}"
    if len(points) == 1:
        return None, f"<= {n1:,}"
    n0, r0 = points[-2]
    share = (DETECTION - r0) / (r1 - r0) if r1 > r0 else 1.0
    size = round(math.exp(math.log(n0) + share * (math.log(n1) - math.log(n0))))
    return size, f"{size:,}"


def known_false_passes(seed: int, trials: int) -> list[tuple[str, str, str]]:
    """Kayenta's reported false passes, each over ``trials`` generated cases."""
    rows = []
    rng = np.random.default_rng([seed, 99])
    # 1. Zero-error baseline: an hour at 100 requests/minute per side (60 intervals of 100),
    #    no error on the baseline, 0.5 % on the canary (most canary intervals still have none).
    k_pass = rg_pass = 0
    for _ in range(trials):
        baseline = np.zeros(60)
        canary = rng.binomial(PER_INTERVAL, 0.005, 60).astype(np.float64)
        k_pass += not kayenta_high(canary, baseline, kay.NETFLIX_CONFIDENCE)
        errors = RateData(int(canary.sum()), 6000)
        rg_pass += compare(RG_ERRORS, errors, RateData(0, 6000)).verdict is Verdict.PASSED
    case = "zero-error baseline (0% vs 0.5% errors, 6,000 requests each)"
    rows.append((case, f"{k_pass}/{trials}", f"{rg_pass}/{trials}"))
    # 2./3. A metric with no data on both sides, or on the canary, among two healthy ones.
    for label, empty_baseline in (("both sides empty", True), ("canary side empty", False)):
        k_pass = rg_pass = 0
        for _ in range(trials):
            lat_b, lat_c = (rng.lognormal(math.log(MEDIAN_MS), SIGMA, 500) for _ in range(2))
            err_b, err_c = (
                rng.binomial(PER_INTERVAL, 0.01, 10).astype(np.float64) for _ in range(2)
            )
            third_b = np.array([]) if empty_baseline else rng.normal(40.0, 5.0, 30)
            pairs = [
                (
                    kay.KayentaMetric("latency", direction="increase", groups=("latency",)),
                    lat_b,
                    lat_c,
                ),
                (
                    kay.KayentaMetric("errors", direction="increase", groups=("errors",)),
                    err_b,
                    err_c,
                ),
                (
                    kay.KayentaMetric("saturation", direction="increase", groups=("saturation",)),
                    third_b,
                    np.array([]),
                ),
            ]
            k_pass += kay.judge(pairs).classification == "Pass"
            third_rg = SampleData(third_b)
            result = judge(
                [
                    (RG_LATENCY, SampleData(lat_c), SampleData(lat_b)),
                    (RG_ERRORS, RateData(int(err_c.sum()), 1000), RateData(int(err_b.sum()), 1000)),
                    (MetricPolicy("saturation", resamples=0), SampleData([]), third_rg),
                ]
            )
            rg_pass += result.verdict is Verdict.PASSED
        rows.append(
            (
                f"{label} (1 of 3 metrics; Kayenta canary score)",
                f"{k_pass}/{trials}",
                f"{rg_pass}/{trials}",
            )
        )
    # 4. Variance-only change: same median, sigma 0.6 -> 0.9 (p95 134 -> 220 ms), 1,000 each.
    k_pass = rg_pass = 0
    for _ in range(trials):
        baseline = rng.lognormal(math.log(MEDIAN_MS), SIGMA, 1000)
        canary = rng.lognormal(math.log(MEDIAN_MS), 0.9, 1000)
        k_pass += not kayenta_high(canary, baseline, kay.NETFLIX_CONFIDENCE)
        rg_pass += (
            compare(RG_LATENCY, SampleData(canary), SampleData(baseline)).verdict is Verdict.PASSED
        )
    rows.append(
        (
            "variance-only change (same median, p95 134 -> 220 ms)",
            f"{k_pass}/{trials}",
            f"{rg_pass}/{trials}",
        )
    )
    return rows


def row(*cells: str) -> None:
    """Print a markdown table row."""
    print("| " + " | ".join(cells) + " |")


def _print_aa(
    aa: list[AAResult],
    matched: dict[int, float],
    matched_high: dict[tuple[int, int], int],
    trials: int,
    seed: int,
) -> None:
    print(f"## A/A: false-positive rate ({trials:,} trials per size, seed {seed})\n")
    row(
        "data",
        "per side",
        "releasegate FAILED",
        "releasegate not PASSED",
        "Kayenta High (0.98)",
        "Kayenta High (matched confidence)",
    )
    print("|---|---|---|---|---|---|")
    for r in aa:
        family = FAMILIES[r.key]
        unit = "requests" if family.rate is not None else "samples"
        t = r.trials
        high = matched_high[(r.key, r.n)]
        row(
            family.name,
            f"{r.n:,} {unit}",
            f"{r.failed / t:.2%}",
            f"{r.not_passed / t:.2%}",
            f"{r.high / t:.2%}",
            f"{high / t:.2%} (c={matched[family.key]:.3f})",
        )


def _print_ab(detection: list[Chain], ab_trials: int, fpr_trials: int) -> None:
    print(f"\n## A/B: samples per side for 80% detection ({ab_trials} trials per grid point)\n")
    print("Each cell: size per side for 80% detection (the A/A false-positive rate at the grid")
    print(f"size that reached it, {fpr_trials:,} trials).\n")
    row(
        "regression",
        "releasegate (alpha 0.01)",
        "Kayenta (confidence 0.98)",
        "Kayenta (matched confidence)",
        "releasegate / matched Kayenta",
    )
    print("|---|---|---|---|---|")
    by = {(d.key, d.factor, d.judge): d for d in detection}
    for family in FAMILIES:
        for factor in family.factors:
            label = (
                f"+{factor - 1:.0%} latency"
                if family.rate is None
                else f"{factor:g}x errors from {family.rate:.1%}"
            )
            cells: list[str] = []
            sizes: list[int | None] = []
            for who in ("releasegate", "kayenta", "matched"):
                d = by[(family.key, factor, who)]
                size, text = n80(d.points)
                sizes.append(size)
                cells.append(f"{text} ({d.fpr:.1%})")
            ratio = f"{sizes[0] / sizes[2]:.2f}" if sizes[0] and sizes[2] else "-"
            row(label, *cells, ratio)
    print("\nDetection rates at the last grid points (size: rate),")
    print("releasegate / Kayenta 0.98 / Kayenta matched:\n")
    for family in FAMILIES:
        for factor in family.factors:
            parts = []
            for who in ("releasegate", "kayenta", "matched"):
                points = by[(family.key, factor, who)].points
                parts.append(" ".join(f"{n:,}: {r:.2f}" for n, r in points[-3:]))
            print(f"- {family.name}, x{factor:g}: " + " / ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000, help="A/A trials per size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="fewer trials, every other grid point")
    args = parser.parse_args()
    trials = min(args.trials, 300) if args.quick else args.trials
    ab_trials = 60 if args.quick else max(100, trials // 10)
    fpr_trials = 5 * ab_trials
    started = time.monotonic()
    with multiprocessing.Pool(args.jobs) as pool:
        calibration = pool.map_async(
            calibrate,
            [(f.key, min(trials, CALIBRATION_TRIALS), args.seed) for f in FAMILIES],
            chunksize=1,
        )
        aa = pool.map(
            aa_task,
            [(f.key, n, trials, args.seed) for f in FAMILIES for n in f.aa_sizes],
            chunksize=1,
        )
        matched = dict(calibration.get())
        matched_aa = pool.map(
            aa_matched_task,
            [(f.key, n, trials, args.seed, matched[f.key]) for f in FAMILIES for n in f.aa_sizes],
            chunksize=1,
        )
        chains = [
            (
                f.key,
                factor,
                who,
                ab_trials,
                fpr_trials,
                args.seed,
                matched[f.key] if who == "matched" else kay.NETFLIX_CONFIDENCE,
                args.quick,
            )
            for f in FAMILIES
            for factor in f.factors
            for who in ("releasegate", "kayenta", "matched")
        ]
        passes = pool.apply_async(known_false_passes, (args.seed, 50 if args.quick else 200))
        detection = pool.map(detection_chain, chains, chunksize=1)
        false_passes = passes.get()
    elapsed = time.monotonic() - started
    _print_aa(aa, matched, {(k, n): h for k, n, h in matched_aa}, trials, args.seed)
    _print_ab(detection, ab_trials, fpr_trials)
    print("\n## Known Kayenta false passes (cases passed)\n")
    print("| case | Kayenta passes | releasegate passes |")
    print("|---|---|---|")
    for case, k, rg in false_passes:
        print(f"| {case} | {k} | {rg} |")
    print(f"\n{elapsed:.0f} s on {args.jobs} processes")


if __name__ == "__main__":
    main()
