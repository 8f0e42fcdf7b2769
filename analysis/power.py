"""How many seeds a paired test needs to detect a given gain: the question no peer tool answers.

From the observed standard deviation of the paired (treatment - baseline) per-seed differences, the
smallest number of seeds n >= 2 at which a one-sided paired t-test at level alpha reaches the target
power for a true gain `gain`: P(T' > t_{1-alpha, n-1}) >= power, with T' noncentral t with n - 1
degrees of freedom and noncentrality gain / (sd / sqrt(n)). The bootstrapped paired t-test the tables
use behaves like this t-test for these sample sizes, so the number is a planning figure, not a promise.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

DEFAULT_MAX_SEEDS = 1000


def paired_t_power(sd_difference, gain: float, n_seeds, *, alpha: float = 0.05) -> np.ndarray:
    """Power of the one-sided paired t-test with `n_seeds` pairs (broadcast over sd and n)."""
    sd = np.asarray(sd_difference, dtype="float64")
    n = np.asarray(n_seeds, dtype="float64")
    df = n - 1
    critical = scipy_stats.t.ppf(1 - alpha, df)
    with np.errstate(divide="ignore", invalid="ignore"):
        noncentrality = gain / (sd / np.sqrt(n))
    power = scipy_stats.nct.sf(critical, df, np.where(np.isfinite(noncentrality), noncentrality, 0.0))
    # no spread: every run shows the gain, so a test on two seeds already detects it
    power = np.where(sd == 0, 1.0 if gain > 0 else 0.0, power)
    return np.where(np.isnan(sd), np.nan, power)


def seeds_needed(
    sd_difference,
    gain: float = 0.5,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    max_seeds: int = DEFAULT_MAX_SEEDS,
) -> np.ndarray:
    """Smallest number of seeds reaching `power` per sd (NaN where sd is unknown, inf beyond max_seeds).

    `gain` is in the units of `sd_difference` (the report uses accuracy points).
    """
    if not gain > 0:
        raise ValueError(f"gain must be positive, got {gain}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie in (0, 1), got alpha={alpha}, power={power}")
    sd = np.atleast_1d(np.asarray(sd_difference, dtype="float64"))
    grid = np.arange(2, max_seeds + 1)
    achieved = paired_t_power(sd[:, None], gain, grid[None, :], alpha=alpha) >= power
    first = np.where(achieved.any(axis=1), grid[achieved.argmax(axis=1)], np.inf)
    result = np.where(np.isnan(sd), np.nan, first)
    return result.reshape(np.shape(sd_difference))
