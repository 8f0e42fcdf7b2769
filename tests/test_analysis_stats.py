"""The bootstrapped paired t-test and its diagnostics on small hand-computed cases."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from analysis.power import paired_t_power, seeds_needed
from analysis.stats import (
    example_bootstrap,
    holm,
    is_significant,
    paired_bootstrap_batch,
    paired_bootstrap_test,
    resample_indices,
    sign_flip_pvalue,
    t_from_moments,
    t_statistic,
)

R = 10_000


def seeds(values, first=0):
    return pd.Series(values, index=range(first, first + len(values)), dtype="float64")


def test_p_value_formula_on_two_pairs():
    # d = [1, 3]: t_obs = 2 / (sqrt(2) / sqrt(2)) = 2. Centred d = [-1, +1]; a resample (i, j) gives
    # T* = -inf for (0, 0), +inf for (1, 1) and 0 otherwise, so only (1, 1) reaches t_obs.
    result = paired_bootstrap_test(seeds([1.0, 3.0]), seeds([0.0, 0.0]), n_resamples=R, seed=7)
    index = resample_indices(2, R, 7)
    both_second = int(np.all(index == 1, axis=1).sum())
    assert result.statistic == pytest.approx(2.0)
    assert result.pvalue == (1 + both_second) / (R + 1)
    assert 0.2 < result.pvalue < 0.3  # about a quarter of the resamples
    assert result.mean_difference == 2.0
    assert result.n_pairs == 2 and result.complete


def test_division_rules():
    assert t_from_moments(0.0, 0.0, 5, 1e-12) == 0.0
    assert t_from_moments(0.5, 0.0, 5, 1e-12) == np.inf
    assert t_from_moments(-0.5, 0.0, 5, 1e-12) == -np.inf
    assert t_from_moments(1.0, 2.0, 4, 1e-12) == pytest.approx(1.0)
    # a constant difference written with floating-point dust is still "x / 0"
    assert t_statistic(np.array([0.82, 0.84, 0.86]) - np.array([0.80, 0.82, 0.84])) == np.inf


def test_identical_inputs_give_p_one():
    values = seeds([0.81, 0.79, 0.85, 0.80])
    result = paired_bootstrap_test(values, values.copy(), n_resamples=R)
    assert result.pvalue == 1.0
    assert result.statistic == 0.0
    assert result.mean_difference == 0.0
    assert not is_significant(result.pvalue, result.mean_difference)


def test_constant_gain_gives_smallest_p_and_constant_loss_gives_one():
    base = seeds([0.70, 0.80, 0.90])
    gain = paired_bootstrap_test(base + 0.02, base, n_resamples=R)
    loss = paired_bootstrap_test(base - 0.02, base, n_resamples=R)
    assert gain.statistic == np.inf and gain.pvalue == 1 / (R + 1)
    assert loss.statistic == -np.inf and loss.pvalue == 1.0


def test_negative_effect_is_never_marked():
    base = seeds([0.80, 0.81, 0.79, 0.82, 0.80])
    result = paired_bootstrap_test(base - [0.01, 0.02, 0.015, 0.01, 0.02], base, n_resamples=R)
    assert result.mean_difference < 0
    assert result.pvalue > 0.5
    assert not is_significant(result.pvalue, result.mean_difference)
    # even a (hypothetical) small p never marks a negative difference
    assert not is_significant(0.001, -0.5)


def test_seed_consistent_small_gain_detected_where_unpaired_test_misses():
    base = np.array([70.0, 75.0, 80.0, 85.0, 90.0, 72.0, 78.0, 83.0, 88.0, 76.0])
    jitter = np.array([0.1, -0.1, 0.05, -0.05, 0.0, 0.1, -0.1, 0.05, -0.05, 0.0])
    treatment = base + 0.5 + jitter
    paired = paired_bootstrap_test(seeds(treatment), seeds(base), n_resamples=R)
    unpaired = scipy_stats.ttest_ind(treatment, base, alternative="greater")
    assert paired.pvalue <= 0.05 and is_significant(paired.pvalue, paired.mean_difference)
    assert unpaired.pvalue > 0.4
    assert paired.confidence_interval[0] > 0.4 and paired.confidence_interval[1] < 0.6


def test_runs_are_paired_by_seed_id_not_row_order():
    base = seeds([70.0, 80.0, 90.0, 75.0])
    treatment = base + [0.5, 0.4, 0.6, 0.5]
    shuffled = treatment.iloc[[2, 0, 3, 1]]
    in_order = paired_bootstrap_test(treatment, base, n_resamples=R)
    reordered = paired_bootstrap_test(shuffled, base, n_resamples=R)
    assert reordered == in_order
    by_rows = paired_bootstrap_test(seeds(shuffled.to_numpy()), base, n_resamples=R)
    assert by_rows.pvalue > 0.3 and in_order.pvalue < 0.05  # row-order pairing would lose the effect


def test_plain_sequences_are_refused():
    with pytest.raises(TypeError, match="indexed by seed"):
        paired_bootstrap_test([0.8, 0.9], [0.7, 0.8])


def test_unpaired_seeds_are_reported():
    result = paired_bootstrap_test(seeds([0.8, 0.81, 0.82, 0.83, 0.84], first=0), seeds([0.8, 0.8, 0.8, 0.8, 0.8], first=1))
    assert result.n_pairs == 4
    assert result.unpaired_treatment == (0,)
    assert result.unpaired_baseline == (5,)
    assert not result.complete


def test_fewer_than_two_pairs_give_no_p():
    result = paired_bootstrap_test(seeds([0.9]), seeds([0.1]))
    assert np.isnan(result.pvalue)
    assert not is_significant(result.pvalue, result.mean_difference)


def test_batch_equals_single_cell_tests():
    rng = np.random.default_rng(3)
    differences = rng.normal(0.3, 1.0, size=(5, 6))
    batch = paired_bootstrap_batch(differences, n_resamples=2_000, seed=11)
    for i, row in enumerate(differences):
        single = paired_bootstrap_test(seeds(row), seeds(np.zeros(6)), n_resamples=2_000, seed=11)
        assert batch.pvalue[i] == single.pvalue
        assert batch.statistic[i] == pytest.approx(single.statistic)


@pytest.mark.parametrize("shift", [2.0, -2.0])
def test_direction_agrees_with_ttest_rel_on_clear_cases(shift):
    rng = np.random.default_rng(5)
    base = rng.normal(80, 3, size=10)
    treatment = base + shift + rng.normal(0, 0.5, size=10)
    ours = paired_bootstrap_test(seeds(treatment), seeds(base), n_resamples=R)
    theirs = scipy_stats.ttest_rel(treatment, base, alternative="greater")
    assert (ours.pvalue < 0.05) == (theirs.pvalue < 0.05)
    assert (ours.pvalue > 0.5) == (theirs.pvalue > 0.5)


def test_holm_step_down_in_input_order():
    # sorted: 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.01, np.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.02) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])


def test_exact_sign_flip_p():
    # d = [1, 2, 3]: of the 8 sign patterns only +++ reaches the observed sum 6
    assert sign_flip_pvalue(np.array([1.0, 2.0, 3.0]))[0] == 1 / 8
    # d = [1, -1]: sums 0, -2, 2, 0 -> three of four reach 0
    assert sign_flip_pvalue(np.array([1.0, -1.0]))[0] == 3 / 4
    assert sign_flip_pvalue(np.zeros(4))[0] == 1.0


def test_sign_flip_matches_scipy_permutation_test():
    d = np.array([0.4, -0.1, 0.3, 0.2, 0.5, -0.2, 0.1])
    reference = scipy_stats.permutation_test(
        (d,), np.mean, permutation_type="samples", alternative="greater", n_resamples=np.inf
    )
    assert sign_flip_pvalue(d)[0] == pytest.approx(reference.pvalue)


def test_example_level_bootstrap_matches_direct_resampling():
    rng = np.random.default_rng(0)
    treatment = rng.integers(0, 2, size=(3, 60)).astype(float)
    baseline = rng.integers(0, 2, size=(3, 60)).astype(float)
    result = example_bootstrap(treatment, baseline, n_resamples=500, seed=4, block=500)
    delta = treatment - baseline
    index = np.random.default_rng(4).integers(0, 60, size=(500, 60))
    centred = delta - delta.mean(axis=1, keepdims=True)
    sample = centred[:, index]
    t_star = sample.mean(axis=2) / (sample.std(axis=2, ddof=1) / np.sqrt(60))
    t_obs = delta.mean(axis=1) / (delta.std(axis=1, ddof=1) / np.sqrt(60))
    expected = (1 + (t_star >= t_obs[:, None]).sum(axis=1)) / 501
    assert result.pvalue == pytest.approx(expected)
    assert result.mean_difference == pytest.approx(delta.mean(axis=1))


def test_example_level_bootstrap_extremes():
    ones, zeros = np.ones((2, 30)), np.zeros((2, 30))
    assert example_bootstrap(ones, zeros, n_resamples=200).pvalue == pytest.approx([1 / 201, 1 / 201])
    assert example_bootstrap(ones, ones, n_resamples=200).pvalue == pytest.approx([1.0, 1.0])


def test_seeds_needed_is_the_first_n_reaching_power():
    needed = seeds_needed(np.array([1.0, 0.5, 0.0, np.nan]), 0.5)
    n = int(needed[0])
    assert paired_t_power(1.0, 0.5, n) >= 0.8 > paired_t_power(1.0, 0.5, n - 1)
    assert 25 <= n <= 29  # normal approximation ((1.645 + 0.842) / 0.5)^2 = 24.7, plus the t correction
    assert needed[1] < needed[0]
    assert needed[2] == 2
    assert np.isnan(needed[3])
    assert seeds_needed(50.0, 0.5, max_seeds=100) == np.inf
    with pytest.raises(ValueError, match="gain"):
        seeds_needed(1.0, 0.0)


def test_power_matches_simulation():
    rng = np.random.default_rng(1)
    d = rng.normal(0.5, 1.0, size=(4000, 12))
    simulated = (scipy_stats.ttest_1samp(d, 0.0, axis=1, alternative="greater").pvalue <= 0.05).mean()
    assert paired_t_power(1.0, 0.5, 12) == pytest.approx(simulated, abs=0.03)


def test_exhaustive_tiny_bootstrap_distribution():
    # With n = 3 the 27 ordered resamples are equally likely: check p against their exact share.
    d = np.array([0.2, 0.5, 1.1])
    t_obs = t_statistic(d)
    centred = d - d.mean()
    hits = sum(t_statistic(centred[list(idx)], 1e-12 * np.abs(d).max()) >= t_obs for idx in itertools.product(range(3), repeat=3))
    result = paired_bootstrap_test(seeds(d), seeds(np.zeros(3)), n_resamples=50_000, seed=2)
    assert result.pvalue == pytest.approx(hits / 27, abs=0.01)
