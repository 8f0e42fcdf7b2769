"""The paper's significance test and its diagnostics, vectorized over table cells.

Primary test (Tables 1-3 underlines): a bootstrapped paired t-test on per-seed accuracies. Runs are
paired by seed id, the differences d are centred on zero to impose the null, the t statistic
mean(d) / (sd(d) / sqrt(n)) is recomputed on resamples of the n pairs and
p = (1 + #{T* >= t_obs}) / (n_resamples + 1), one-sided (treatment better).

Division rule for the t statistic: 0/0 is 0 and x/0 is +-infinity. "Zero" is judged relative to the
magnitude of the differences (1e-12 of the largest |d|), so that floating-point dust in a constant
difference never turns into a spurious finite or infinite statistic.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Union

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

RELATIVE_ZERO = 1e-12
EXACT_SIGN_FLIP_MAX_PAIRS = 20
SIGN_FLIP_BLOCK = 1 << 16
GATHER_BUDGET = 2_000_000  # float64 values per vectorized block (16 MB: faster than larger blocks, too)

SeedScores = Union[pd.Series, Mapping[int, float]]


@dataclass(frozen=True)
class PairedTestResult:
    """scipy-style result of `paired_bootstrap_test` (accuracies in the units given, e.g. fractions)."""

    statistic: float
    pvalue: float
    mean_difference: float
    confidence_interval: tuple[float, float]
    n_pairs: int
    unpaired_treatment: tuple[int, ...]
    unpaired_baseline: tuple[int, ...]
    n_resamples: int

    @property
    def complete(self) -> bool:
        """Every seed of either side found its partner."""
        return not self.unpaired_treatment and not self.unpaired_baseline


@dataclass(frozen=True)
class Pairing:
    """Scores of the seeds present on both sides, in seed order, and the seeds left without a partner."""

    seeds: tuple[int, ...]
    treatment: np.ndarray
    baseline: np.ndarray
    unpaired_treatment: tuple[int, ...]
    unpaired_baseline: tuple[int, ...]


def _as_seed_series(values: SeedScores, name: str) -> pd.Series:
    if isinstance(values, pd.Series):
        series = values
    elif isinstance(values, Mapping):
        series = pd.Series(dict(values), dtype="float64")
    else:
        raise TypeError(
            f"{name}: pass scores indexed by seed (a pandas Series or a mapping seed -> score); "
            "a plain sequence would be paired by row order"
        )
    if series.index.has_duplicates:
        raise ValueError(f"{name}: seed {series.index[series.index.duplicated()][0]!r} appears twice")
    if series.isna().any():
        raise ValueError(f"{name}: score of seed {series.index[series.isna()][0]!r} is NaN")
    return series.astype("float64")


def pair_by_seed(treatment: SeedScores, baseline: SeedScores) -> Pairing:
    """Pair two seed-indexed score sets by seed id, reporting (not dropping silently) unmatched seeds."""
    t = _as_seed_series(treatment, "treatment")
    b = _as_seed_series(baseline, "baseline")
    common = sorted(set(t.index) & set(b.index))
    return Pairing(
        seeds=tuple(common),
        treatment=t.loc[common].to_numpy(),
        baseline=b.loc[common].to_numpy(),
        unpaired_treatment=tuple(sorted(set(t.index) - set(common))),
        unpaired_baseline=tuple(sorted(set(b.index) - set(common))),
    )


def zero_tolerance(differences: np.ndarray) -> np.ndarray:
    """Per cell (leading axes): what counts as zero for means and standard deviations of d."""
    return RELATIVE_ZERO * np.max(np.abs(differences), axis=-1)


def t_from_moments(mean: np.ndarray, sd: np.ndarray, n: int, tolerance) -> np.ndarray:
    """mean / (sd / sqrt(n)) with 0/0 = 0 and x/0 = +-inf (zero meaning |.| <= tolerance)."""
    mean, sd = np.asarray(mean, dtype="float64"), np.asarray(sd, dtype="float64")
    zero_sd = sd <= tolerance
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mean / (sd / np.sqrt(n))
    limit = np.where(np.abs(mean) <= tolerance, 0.0, np.copysign(np.inf, mean))
    return np.where(zero_sd, limit, ratio)


def t_statistic(differences: np.ndarray, tolerance=None) -> np.ndarray:
    """The paired t statistic over the last axis of `differences`."""
    d = np.asarray(differences, dtype="float64")
    tolerance = zero_tolerance(d) if tolerance is None else tolerance
    return t_from_moments(d.mean(axis=-1), d.std(axis=-1, ddof=1), d.shape[-1], tolerance)


def resample_indices(n_pairs: int, n_resamples: int, seed: int | np.random.Generator) -> np.ndarray:
    """(n_resamples, n_pairs) indices of pairs drawn with replacement from one seeded Generator."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_pairs, size=(n_resamples, n_pairs))


@dataclass(frozen=True)
class BootstrapBatch:
    """Per-cell outcome of the bootstrapped paired t-test on a (cells, n) matrix of differences."""

    statistic: np.ndarray
    pvalue: np.ndarray
    mean_difference: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def _nan_batch(cells: int, mean: np.ndarray) -> BootstrapBatch:
    nan = np.full(cells, np.nan)
    return BootstrapBatch(nan, nan.copy(), mean, nan.copy(), nan.copy())


def paired_bootstrap_batch(
    differences: np.ndarray, *, n_resamples: int = 10_000, seed: int | np.random.Generator = 0
) -> BootstrapBatch:
    """The bootstrapped paired t-test for every row of a (cells, n) matrix of paired differences.

    All cells share one set of resampled pair indices (drawn once from the seeded Generator), so a
    cell's p-value equals `paired_bootstrap_test` on that cell alone with the same seed. Fewer than
    two pairs give NaN: a t statistic needs a spread.
    """
    d = np.atleast_2d(np.asarray(differences, dtype="float64"))
    cells, n = d.shape
    mean = d.mean(axis=1) if n else np.full(cells, np.nan)
    if n < 2:
        return _nan_batch(cells, mean)
    tolerance = zero_tolerance(d)
    t_obs = t_statistic(d, tolerance)
    centred = d - mean[:, None]
    index = resample_indices(n, n_resamples, seed)
    exceed = np.zeros(cells, dtype="int64")
    lows, highs = np.empty(cells), np.empty(cells)
    block = max(1, GATHER_BUDGET // (n_resamples * n))
    for start in range(0, cells, block):
        rows = slice(start, start + block)
        sample = centred[rows][:, index]  # (block, n_resamples, n)
        sample_mean = sample.mean(axis=2)
        t_star = t_from_moments(sample_mean, sample.std(axis=2, ddof=1), n, tolerance[rows, None])
        exceed[rows] = (t_star >= t_obs[rows, None]).sum(axis=1)
        lows[rows], highs[rows] = np.percentile(sample_mean + mean[rows, None], [2.5, 97.5], axis=1)
    pvalue = (1 + exceed) / (n_resamples + 1)
    return BootstrapBatch(t_obs, pvalue, mean, lows, highs)


def paired_bootstrap_test(
    treatment: SeedScores,
    baseline: SeedScores,
    *,
    n_resamples: int = 10_000,
    seed: int | np.random.Generator = 0,
) -> PairedTestResult:
    """Bootstrapped paired t-test of "treatment better than baseline", runs paired by seed id.

    `treatment` and `baseline` map seed -> score (pandas Series indexed by seed, or a dict). Seeds
    present on one side only are returned in `unpaired_treatment` / `unpaired_baseline`.
    """
    pairing = pair_by_seed(treatment, baseline)
    batch = paired_bootstrap_batch(
        (pairing.treatment - pairing.baseline)[None, :], n_resamples=n_resamples, seed=seed
    )
    return PairedTestResult(
        statistic=float(batch.statistic[0]),
        pvalue=float(batch.pvalue[0]),
        mean_difference=float(batch.mean_difference[0]),
        confidence_interval=(float(batch.ci_low[0]), float(batch.ci_high[0])),
        n_pairs=len(pairing.seeds),
        unpaired_treatment=pairing.unpaired_treatment,
        unpaired_baseline=pairing.unpaired_baseline,
        n_resamples=n_resamples,
    )


def is_significant(pvalue, mean_difference, alpha: float = 0.05, complete=True) -> np.ndarray:
    """The table's mark: p <= alpha, a positive mean difference and complete pairs (NaN p never marks)."""
    p = np.asarray(pvalue, dtype="float64")
    with np.errstate(invalid="ignore"):
        return (p <= alpha) & (np.asarray(mean_difference) > 0) & np.asarray(complete, dtype=bool)


def ttest_rel_pvalue(treatment: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Diagnostic: scipy's paired t-test, one-sided (treatment greater), over the last axis."""
    # constant differences make scipy warn about precision loss; the diagnostic is still what it is
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy_stats.ttest_rel(treatment, baseline, axis=-1, alternative="greater")
    return np.asarray(result.pvalue, dtype="float64")


def _sign_patterns(n: int, start: int, stop: int) -> np.ndarray:
    codes = np.arange(start, stop, dtype=np.int64)[:, None]
    bits = (codes >> np.arange(n, dtype=np.int64)) & 1
    return 1.0 - 2.0 * bits


def sign_flip_pvalue(differences: np.ndarray, *, seed: int | np.random.Generator = 0, n_resamples: int = 100_000) -> np.ndarray:
    """Diagnostic: the sign-flip permutation p of mean(d) >= observed, over the last axis.

    Exact (all 2**n sign patterns, so p >= 2**-n) for n <= 20 pairs; beyond, a Monte Carlo estimate
    (1 + #) / (n_resamples + 1) from the seeded Generator. Ties count as at least as extreme.
    """
    d = np.atleast_2d(np.asarray(differences, dtype="float64"))
    n = d.shape[1]
    if n == 0:
        return np.full(d.shape[0], np.nan)
    observed = d.sum(axis=1)
    slack = RELATIVE_ZERO * np.maximum(np.abs(d).sum(axis=1), 1e-300)
    if n > EXACT_SIGN_FLIP_MAX_PAIRS:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_resamples, n))
        hits = ((signs @ d.T) >= observed - slack).sum(axis=0)
        return (1 + hits) / (n_resamples + 1)
    total = 1 << n
    hits = np.zeros(d.shape[0], dtype="int64")
    for start in range(0, total, SIGN_FLIP_BLOCK):
        signs = _sign_patterns(n, start, min(total, start + SIGN_FLIP_BLOCK))
        hits += ((signs @ d.T) >= observed - slack).sum(axis=0)
    return hits / total


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values, returned in the input order; NaN stays NaN and is not counted.

    Sorted ascending, the k-th smallest (k = 0..m-1) becomes max over j <= k of min(1, (m - j) p_(j)).
    """
    p = np.asarray(pvalues, dtype="float64")
    adjusted = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    values = p[finite]
    m = values.size
    if m == 0:
        return adjusted
    order = np.argsort(values, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * values[order]))
    restored = np.empty(m)
    restored[order] = stepped
    adjusted[finite] = restored
    return adjusted


@dataclass(frozen=True)
class ExampleBootstrap:
    """Per-language outcome of the example-level paired bootstrap (supplementary test)."""

    mean_difference: np.ndarray
    statistic: np.ndarray
    pvalue: np.ndarray


def example_bootstrap(
    treatment: np.ndarray,
    baseline: np.ndarray,
    *,
    n_resamples: int = 10_000,
    seed: int | np.random.Generator = 0,
    block: int = 500,
) -> ExampleBootstrap:
    """Paired bootstrap over test examples: (languages, examples) arrays of correctness averaged over seeds.

    Same recipe as the seed-level test (centred differences, t statistic, one-sided p) but the pairs
    are examples, aligned by example id across methods and languages, so one draw of resampled
    examples (as counts per example) serves every language. Blocks of resamples keep memory flat.
    """
    delta = np.atleast_2d(np.asarray(treatment, dtype="float64") - np.asarray(baseline, dtype="float64"))
    languages, examples = delta.shape
    tolerance = zero_tolerance(delta)
    mean = delta.mean(axis=1)
    t_obs = t_statistic(delta, tolerance)
    centred = delta - mean[:, None]
    stacked = np.concatenate([centred, centred**2], axis=0).T  # (examples, 2 * languages)
    rng = np.random.default_rng(seed)
    exceed = np.zeros(languages, dtype="int64")
    for start in range(0, n_resamples, block):
        rows = min(block, n_resamples - start)
        draws = rng.integers(0, examples, size=(rows, examples)) + examples * np.arange(rows)[:, None]
        counts = np.bincount(draws.ravel(), minlength=rows * examples).reshape(rows, examples)
        sums = counts.astype("float64") @ stacked
        sample_mean = sums[:, :languages] / examples
        variance = (sums[:, languages:] - examples * sample_mean**2) / (examples - 1)
        sd = np.sqrt(np.maximum(variance, 0.0))
        t_star = t_from_moments(sample_mean, sd, examples, tolerance[None, :])
        exceed += (t_star >= t_obs[None, :]).sum(axis=0)
    return ExampleBootstrap(mean, t_obs, (1 + exceed) / (n_resamples + 1))
