"""The report end to end: CLI exit codes, every figure file from a synthetic-world directory, formats, the paper."""

from __future__ import annotations

import io
import shutil
import subprocess

import pandas as pd
import pytest

from analysis.distances import compute_uriel_distances, experiment_distances, order_by_distance, shipped_distances
from analysis.load import load_results, planned_frame
from analysis.paper import compare_with_paper, paper_results
from analysis.report import main, render_report
from analysis.tables import TableOptions, build_task_table
from analysis.testing import config
from fixtures_analysis import BASELINE, PAWSX_LANGUAGES, write_hand_experiment, write_values, write_world_experiment

FIGURE_STEMS = [
    *(f"pawsx_fig2_gain_vs_distance_{m}" for m in ("adv", "rs_rp", "rs_da", "rs_syntax")),
    *(f"pawsx_fig3_m_ablation_{m}" for m in ("rs_da", "rs_syntax")),
    *(f"pawsx_fig45_generalized_{m}_minus_baseline" for m in ("adv", "rs_rp", "rs_da", "rs_syntax")),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_world_experiment(tmp_path_factory.mktemp("world") / "world")


def test_cli_writes_report_and_every_figure(world, tmp_path, capsys):
    figures, out = tmp_path / "figures", tmp_path / "report.md"
    assert main([str(world), "--figures", str(figures), "--out", str(out)]) == 0
    for stem in FIGURE_STEMS:
        assert (figures / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
        assert (figures / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-", stem
    assert sorted(p.name for p in figures.iterdir()) == sorted(f"{s}.{e}" for s in FIGURE_STEMS for e in ("png", "pdf"))
    report = out.read_text()
    assert "| Method | en | xa | xb | xc | avg |" in report
    assert "RS-DA (m=5)" in report and "RS-RP (eps=0.1)" in report  # chosen by dev accuracy
    assert "No paper numbers to compare for task 'pawsx'" in report
    assert "Seeds needed to detect +0.5 points" in report
    assert "Generalized setting: RS-DA - Baseline" in report
    assert str(figures / "pawsx_fig2_gain_vs_distance_rs_da.png") in report
    assert "wrote" in capsys.readouterr().err


def test_report_marks_the_world_s_robust_gains(world):
    text = render_report([world], n_resamples=2_000)
    main_table = text.split("### Configuration")[0]
    rows = {line.split("|")[1].strip(): line.strip("|").split("|") for line in main_table.splitlines() if line.startswith("| ")}
    assert "<u>" in rows["RS-DA (m=5)"][-1] and "<u>" in rows["RS-DA (m=5)"][-2]  # avg and xc (most distant)
    assert not any("<u>" in c for c in rows["Baseline"])
    assert "<u>" not in rows["ADV (eps=0.1)"][-2]  # the world gives ADV almost nothing
    assert "p example-level" in text


def test_two_tasks_in_one_report(world, tmp_path):
    xnli = write_world_experiment(tmp_path / "xnli", task="xnli", name="world-xnli", seeds=(0, 1, 2), num_labels=3)
    text = render_report([world, xnli], n_resamples=500, example_level=False)
    assert "## pawsx (experiments: world)" in text and "## xnli (experiments: world-xnli)" in text


def test_csv_format_has_one_row_per_cell(world):
    frame = pd.read_csv(io.StringIO(render_report([world], fmt="csv", n_resamples=500, example_level=False)))
    assert len(frame) == 5 * 5  # five methods x (four languages + avg)
    assert set(frame["column"]) == {"en", "xa", "xb", "xc", "avg"}
    assert frame[frame["method"] == "baseline"]["significant"].eq(False).all()


def latex_engine():
    return next((shutil.which(e) for e in ("pdflatex", "lualatex", "xelatex") if shutil.which(e)), None)


@pytest.mark.skipif(latex_engine() is None, reason="no LaTeX engine (pdflatex/lualatex/xelatex) installed on this machine")
def test_full_latex_report_compiles(world, tmp_path):
    source = tmp_path / "report.tex"
    source.write_text(render_report([world], fmt="latex", standalone=True, n_resamples=500, example_level=False))
    completed = subprocess.run([latex_engine(), "-interaction=nonstopmode", "-halt-on-error", source.name],
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout[-2000:]


def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    out, figures = tmp_path / "report.md", tmp_path / "figures"
    assert main([str(tmp_path / "missing"), "--out", str(out), "--figures", str(figures)]) == 2
    assert "not an experiment directory" in capsys.readouterr().err
    root = write_hand_experiment(tmp_path / "hand")
    assert main([str(root), "--baseline", "rs_da", "--out", str(out), "--figures", str(figures)]) == 2
    assert "no table results for the baseline method 'rs_da'" in capsys.readouterr().err
    assert main([str(root), "--alpha", "1.5"]) == 2
    assert "--alpha must lie in (0, 1)" in capsys.readouterr().err
    assert main([str(root), "--format", "pdf"]) == 2
    assert main([str(root), "--out", str(tmp_path / "no" / "such" / "folder.md")]) == 2
    assert not out.exists() and not figures.exists()
    assert list(tmp_path.glob(".report.md*")) == []


def test_cli_prints_markdown_by_default_and_holm_is_named(tmp_path, capsys):
    root = write_hand_experiment(tmp_path / "hand")
    assert main([str(root), "--holm", "--no-example-level"]) == 0
    printed = capsys.readouterr().out
    assert "| RS-RP (eps=0.1) | 81.0 | **<u>74.0</u>** | **<u>77.5</u>** |" in printed
    assert "Holm-adjusted across the languages of each row" in printed


def test_comparison_with_the_paper_on_its_languages(tmp_path):
    syntax = config("rs_syntax", m=10)
    test = {BASELINE.config_id: {lang: [0.80, 0.80] for lang in PAWSX_LANGUAGES},
            syntax.config_id: {lang: [0.81, 0.81] for lang in PAWSX_LANGUAGES}}
    root = write_values(tmp_path / "paper", languages=PAWSX_LANGUAGES, test=test,
                        dev={BASELINE.config_id: 0.9, syntax.config_id: 0.9}, configs=(BASELINE, syntax), seeds=(0, 1))
    results = load_results([root])
    table = build_task_table(results.metrics, planned_frame(results.experiments), PAWSX_LANGUAGES, TableOptions(n_resamples=200))
    comparison = compare_with_paper(table.cells, "pawsx", PAWSX_LANGUAGES).frame.set_index(["method", "column"])
    assert comparison.loc[("baseline", "de"), "paper"] == 85.4
    assert comparison.loc[("baseline", "de"), "difference"] == pytest.approx(80.0 - 85.4)
    assert comparison.loc[("rs_syntax", "ja"), "paper"] == 76.5  # Table 3
    assert bool(comparison.loc[("rs_syntax", "ja"), "paper_significant"])
    assert comparison.loc[("rs_syntax", "avg"), "difference"] == pytest.approx(81.0 - 83.5)
    text = render_report([root], n_resamples=200, example_level=False)
    assert "| Baseline | 80.0 / 93.7 (-13.7) | 80.0 / 85.4 (-5.4) |" in text
    assert "<u>81.0</u> / <u>76.5</u> (+4.5)" in text  # RS-syntax ja: significant here and in the paper
    assert "<u>81.0</u> / 93.0 (-12.0)" in text  # en: significant here, not in the paper


def test_partial_language_set_compares_without_avg():
    cells = pd.DataFrame({"method": ["baseline", "baseline"], "row": ["Baseline"] * 2, "column": ["en", "de"],
                          "mean": [90.0, 80.0], "significant": [False, False]})
    comparison = compare_with_paper(cells, "pawsx", ("en", "de"))
    assert list(comparison.frame["column"]) == ["en", "de"]
    assert "Only en, de are compared" in comparison.note


def test_paper_data_is_the_papers_tables():
    xnli = paper_results("xnli").set_index(["model", "lang"])
    assert xnli.loc[("mBERT-RS-DA", "avg"), "paper"] == 67.6
    assert len(paper_results("pawsx")["model"].unique()) == 6  # incl. Hu et al. and RS-syntax


def test_distances_shipped_and_per_experiment(world):
    shipped = shipped_distances()
    assert shipped.values["de"] == 0.3582 and shipped.values["en"] == 0.0
    assert shipped.covers(PAWSX_LANGUAGES) and "syntactic" in shipped.name
    assert order_by_distance(PAWSX_LANGUAGES, shipped) == ["en", "de", "es", "fr", "zh", "ko", "ja"]
    info = load_results([world]).experiments[0]
    own = experiment_distances(info)
    assert own.name == "embedding misalignment" and own.values["xc"] == 1.0


def test_urielplus_recomputes_the_shipped_distances():
    pytest.importorskip("urielplus", reason="urielplus (extra 'distances') is not installed")
    recomputed = compute_uriel_distances(["de", "ja", "sw"])
    shipped = shipped_distances().values
    assert recomputed == {lang: shipped[lang] for lang in ("de", "ja", "sw")}


def test_report_says_which_figures_the_data_cannot_give(tmp_path):
    text = render_report([write_hand_experiment(tmp_path / "hand")], n_resamples=200, example_level=False)
    assert "Figure 2 needs" not in text  # en and de are in the shipped URIEL table
    assert "Figures 4-5 and the generalized matrices need generalized test pairs" in text
    test = {BASELINE.config_id: {"en": [0.8, 0.8], "qq": [0.7, 0.7]}}
    unknown = write_values(tmp_path / "qq", languages=("en", "qq"), test=test, dev={BASELINE.config_id: 0.8},
                           configs=(BASELINE,), seeds=(0, 1))
    assert "Figure 2 needs distances from English" in render_report([unknown], n_resamples=200, example_level=False)


def test_summary_csv_covers_every_configuration(tmp_path):
    root, summary = write_hand_experiment(tmp_path / "hand"), tmp_path / "summary.csv"
    assert main([str(root), "--no-example-level", "--resamples", "100", "--summary", str(summary)]) == 0
    frame = pd.read_csv(summary)
    assert len(frame) == 3 * 3  # three configurations x (en, de, avg)
    small = frame[(frame["config_id"] == "rs_rp-eps0.01") & (frame["lang1"] == "de")].iloc[0]
    assert (small["mean"], small["std"], small["n"], small["N"]) == (90.0, 0.0, 3, 3)
    avg = frame[(frame["config_id"] == "baseline") & (frame["lang1"] == "avg")].iloc[0]
    assert avg["mean"] == pytest.approx(77.0) and avg["lang2"] == "avg"


def test_the_papers_number_inside_or_outside_our_95_percent_interval():
    from analysis.paper import interval_grid

    # baseline en: mean 93.0, sd 1.0 over 3 seeds: half-width t(0.975, 2) = 4.3027 / sqrt(3) = 2.484
    cells = pd.DataFrame({"method": ["baseline", "baseline"], "row": ["Baseline"] * 2, "column": ["en", "de"],
                          "mean": [93.0, 80.0], "std": [1.0, 1.0], "n": [3, 3], "significant": [False, False]})
    frame = compare_with_paper(cells, "pawsx", ("en", "de")).frame.set_index("column")
    assert frame.loc["en", "ours_high"] - frame.loc["en", "ours"] == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-5)
    assert bool(frame.loc["en", "inside"]) and not bool(frame.loc["de", "inside"])  # paper 93.7 / 85.4
    grid = interval_grid(compare_with_paper(cells, "pawsx", ("en", "de")))
    assert grid.loc["Baseline", "en"] == "[90.5, 95.5] in" and grid.loc["Baseline", "de"] == "[77.5, 82.5] out"
    one_seed = cells.assign(n=[1, 1])
    assert not compare_with_paper(one_seed, "pawsx", ("en", "de")).frame["inside"].any()  # no interval from 1 seed


def test_kept_empty_and_placeholder_rows_are_counted_in_the_report(tmp_path):
    import json

    root = write_hand_experiment(tmp_path / "hand")
    document = json.loads((root / "experiment.json").read_text())
    document["kept_rows"] = {"train/en": {"rows": 100, "empty": 0, "placeholder": 0},
                             "test/de": {"rows": 50, "empty": 2, "placeholder": 3}}
    (root / "experiment.json").write_text(json.dumps(document))
    text = render_report([root], n_resamples=200, example_level=False)
    assert "### Rows with an empty or placeholder sentence" in text
    assert "| hand / test/de | 50 | 2 | 3 |" in text and "train/en" not in text
    del document["kept_rows"]
    (root / "experiment.json").write_text(json.dumps(document))
    assert "### Rows with an empty" not in render_report([root], n_resamples=200, example_level=False)
