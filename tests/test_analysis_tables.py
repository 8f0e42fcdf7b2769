"""Tables 1-3 from hand-computed results: cells, marks, and the CSV / LaTeX / Markdown layouts cell by cell."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import pandas as pd
import pytest

from analysis.aggregate import select_configurations
from analysis.load import AnalysisInputError, load_results, planned_frame
from analysis.stats import paired_bootstrap_test
from analysis.tables import TableOptions, build_task_table, latex_document, render_csv, render_latex, render_markdown
from analysis.testing import config
from fixtures_analysis import BASELINE, RS_RP_BIG, write_hand_experiment, write_values

R = 10_000
XNLI_LANGUAGES = ("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")


def table_for(root, **options):
    results = load_results([root])
    info = results.experiments[0]
    return build_task_table(results.metrics, planned_frame(results.experiments), info.languages, TableOptions(**options))


def cell(table, method, column):
    rows = table.cells[(table.cells["method"] == method) & (table.cells["column"] == column)]
    assert len(rows) == 1
    return rows.iloc[0]


@pytest.fixture
def hand_table(tmp_path):
    return table_for(write_hand_experiment(tmp_path / "hand"))


def test_configuration_is_chosen_by_mean_english_dev_accuracy(tmp_path):
    results = load_results([write_hand_experiment(tmp_path / "hand")])
    chosen = select_configurations(results.metrics, planned_frame(results.experiments)).set_index("method")
    assert chosen.loc["rs_rp", "config_id"] == RS_RP_BIG.config_id  # dev 86 beats 84 despite worse test numbers
    assert chosen.loc["rs_rp", "dev_mean"] == pytest.approx(86.0)
    assert chosen.loc["rs_rp", "dev_n"] == 3


def test_hand_computed_cells(hand_table):
    assert hand_table.rows == ["Baseline", "RS-RP (eps=0.1)"]
    expected = {
        ("baseline", "en"): (82.0, 2.0), ("baseline", "de"): (72.0, 2.0), ("baseline", "avg"): (77.0, 2.0),
        ("rs_rp", "en"): (81.0, 2.0), ("rs_rp", "de"): (74.0, 2.0), ("rs_rp", "avg"): (77.5, 2.0),
    }
    for (method, column), (mean, std) in expected.items():
        c = cell(hand_table, method, column)
        assert c["mean"] == pytest.approx(mean) and c["std"] == pytest.approx(std)
        assert c["n"] == 3 and c["N"] == 3
    en, de, avg = (cell(hand_table, "rs_rp", c) for c in ("en", "de", "avg"))
    assert en["mean_diff"] == pytest.approx(-1.0) and en["p"] == 1.0 and not en["significant"]
    assert de["mean_diff"] == pytest.approx(2.0) and de["p"] == 1 / (R + 1) and de["significant"]
    assert avg["mean_diff"] == pytest.approx(0.5) and avg["p"] == 1 / (R + 1) and avg["significant"]
    assert [cell(hand_table, m, "en")["best"] for m in ("baseline", "rs_rp")] == [True, False]
    assert [cell(hand_table, m, "de")["best"] for m in ("baseline", "rs_rp")] == [False, True]
    assert not cell(hand_table, "baseline", "de")["significant"]


def test_avg_column_tests_per_seed_averages(tmp_path):
    # per-language differences are noisy (+3/-1/+2 and -1/+3/0 points) but every seed's average gains exactly 1
    treatment = config("rs_da", m=3)
    test = {
        BASELINE.config_id: {"en": [0.80, 0.82, 0.84], "de": [0.70, 0.72, 0.74]},
        treatment.config_id: {"en": [0.83, 0.81, 0.86], "de": [0.69, 0.75, 0.74]},
    }
    root = write_values(tmp_path / "avg", languages=("en", "de"), test=test,
                        dev={BASELINE.config_id: 0.8, treatment.config_id: 0.8}, configs=(BASELINE, treatment), seeds=(0, 1, 2))
    table = table_for(root)
    avg = cell(table, "rs_da", "avg")
    per_seed = pd.Series([76.0, 78.0, 80.0])
    assert avg["p"] == paired_bootstrap_test(per_seed, per_seed - 1.0, n_resamples=R).pvalue == 1 / (R + 1)
    assert avg["significant"]
    assert cell(table, "rs_da", "en")["p"] > 0.05 and cell(table, "rs_da", "de")["p"] > 0.05


def test_holm_adjusts_across_the_languages_of_a_row(tmp_path):
    table = table_for(write_hand_experiment(tmp_path / "hand"), holm=True)
    assert cell(table, "rs_rp", "de")["p_holm"] == pytest.approx(2 / (R + 1))
    assert cell(table, "rs_rp", "en")["p_holm"] == 1.0
    assert cell(table, "rs_rp", "avg")["p_holm"] == cell(table, "rs_rp", "avg")["p"]  # avg is not in the family
    assert cell(table, "rs_rp", "de")["significant"]


def test_holm_can_remove_a_mark(tmp_path):
    table = table_for(write_hand_experiment(tmp_path / "hand"), alpha=1.5 / (R + 1), holm=True)
    assert not cell(table, "rs_rp", "de")["significant"]  # 2/(R+1) > alpha after adjustment
    unadjusted = table_for(write_hand_experiment(tmp_path / "again"), alpha=1.5 / (R + 1))
    assert cell(unadjusted, "rs_rp", "de")["significant"]  # 1/(R+1) <= alpha without adjustment


def test_incomplete_cells_show_n_over_N_and_are_never_marked(tmp_path):
    root = write_hand_experiment(tmp_path / "hand", skip=[(RS_RP_BIG.config_id, 2)])
    table = table_for(root)
    de = cell(table, "rs_rp", "de")
    assert de["n"] == 2 and de["N"] == 3
    assert de["p"] == 1 / (R + 1)  # the two pairs agree perfectly ...
    assert not de["significant"] and not de["complete"]  # ... but a third of the planned seeds is missing
    assert de["unpaired_seeds"] == "2"
    markdown = render_markdown(table)
    # seeds 0 and 1 only: en 79/81, de 72/74, avg 75.5/77.5
    assert "| RS-RP (eps=0.1) | 80.0 (2/3) | **73.0** (2/3) | 76.5 (2/3) |" in markdown


def test_missing_baseline_is_a_clear_error(tmp_path):
    with pytest.raises(AnalysisInputError, match="no table results for the baseline method 'adv'"):
        table_for(write_hand_experiment(tmp_path / "hand"), baseline="adv")


def test_markdown_cells(hand_table):
    lines = render_markdown(hand_table).splitlines()
    assert lines[0] == "| Method | en | de | avg |"
    assert lines[1] == "|---|---:|---:|---:|"
    assert lines[2] == "| Baseline | **82.0** | 72.0 | 77.0 |"
    assert lines[3] == "| RS-RP (eps=0.1) | 81.0 | **<u>74.0</u>** | **<u>77.5</u>** |"
    assert "p <= 0.05" in lines[5]


def test_csv_cells_carry_the_marks(hand_table):
    frame = pd.read_csv(io.StringIO(render_csv([hand_table])))
    assert {"mean", "std", "n", "N", "p", "significant"} <= set(frame.columns)
    assert len(frame) == 6
    row = frame[(frame["method"] == "rs_rp") & (frame["column"] == "de")].iloc[0]
    assert (row["mean"], row["std"], row["n"], row["N"]) == (74.0, 2.0, 3, 3)
    assert row["p"] == pytest.approx(1 / (R + 1), rel=1e-5)
    assert bool(row["significant"]) and bool(row["best"])
    assert row["row"] == "RS-RP (eps=0.1)"
    base = frame[(frame["method"] == "baseline") & (frame["column"] == "en")].iloc[0]
    assert base["mean"] == 82.0 and not bool(base["significant"]) and bool(base["best"]) and pd.isna(base["p"])


def balanced_braces(text: str) -> bool:
    depth = 0
    for match in re.finditer(r"\\[{}]|[{}]", text):
        token = match.group()
        if token in ("{", "}"):
            depth += 1 if token == "{" else -1
            if depth < 0:
                return False
    return depth == 0


def tabular_rows(latex: str) -> list[list[str]]:
    body = latex.split(r"\begin{tabular}")[1].split(r"\end{tabular}")[0]
    rows = [line.rstrip(r" \\").split(" & ") for line in body.splitlines() if line.endswith(r"\\")]
    return rows


def test_latex_structure_and_marks(hand_table):
    latex = render_latex(hand_table)
    assert balanced_braces(latex)
    assert latex.count(r"\toprule") == 1 and latex.count(r"\bottomrule") == 1 and latex.count(r"\midrule") == 1
    assert r"\begin{tabular}{lccc}" in latex
    rows = tabular_rows(latex)
    assert rows == [
        ["Model", "en", "de", "avg"],
        ["Baseline", r"\textbf{82.0}", "72.0", "77.0"],
        ["RS-RP (eps=0.1)", "81.0", r"\textbf{\underline{74.0}}", r"\textbf{\underline{77.5}}"],
    ]
    assert latex.count(r"\textbf") == 3 and latex.count(r"\underline") == 2
    assert r"p $\le$ 0.05" in latex and r"Test accuracy (\%)" in latex


def test_wide_latex_table_is_stacked_in_two_blocks(tmp_path):
    constant = {lang: [0.7, 0.7] for lang in XNLI_LANGUAGES}
    gain = {lang: [0.71, 0.71] for lang in XNLI_LANGUAGES}
    treatment = config("rs_da", m=3)
    root = write_values(tmp_path / "xnli", task="xnli", languages=XNLI_LANGUAGES,
                        test={BASELINE.config_id: constant, treatment.config_id: gain},
                        dev={BASELINE.config_id: 0.8, treatment.config_id: 0.8}, configs=(BASELINE, treatment), seeds=(0, 1))
    latex = render_latex(table_for(root))
    assert balanced_braces(latex)
    rows = tabular_rows(latex)
    assert rows[0] == ["Model", *XNLI_LANGUAGES[:8]]
    assert rows[3] == ["Model", *XNLI_LANGUAGES[8:], "avg"]
    assert all(len(r) == 9 for r in rows)
    assert latex.count(r"\midrule") == 3
    assert rows[2][1] == r"\textbf{\underline{71.0}}"


def latex_engine():
    return next((shutil.which(e) for e in ("pdflatex", "lualatex", "xelatex") if shutil.which(e)), None)


@pytest.mark.skipif(latex_engine() is None, reason="no LaTeX engine (pdflatex/lualatex/xelatex) installed on this machine")
def test_latex_compiles_standalone(hand_table, tmp_path):
    source = tmp_path / "table.tex"
    source.write_text(latex_document(render_latex(hand_table)), encoding="utf-8")
    completed = subprocess.run([latex_engine(), "-interaction=nonstopmode", "-halt-on-error", source.name],
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stdout[-2000:]
    assert (tmp_path / "table.pdf").stat().st_size > 0


def test_baseline_only_table(tmp_path):
    root = write_values(tmp_path / "solo", languages=("en", "de"), test={BASELINE.config_id: {"en": [0.8, 0.9], "de": [0.7, 0.7]}},
                        dev={BASELINE.config_id: 0.8}, configs=(BASELINE,), seeds=(0, 1))
    table = table_for(root)
    assert cell(table, "baseline", "avg")["mean"] == pytest.approx(77.5)
    assert not table.cells["significant"].any() and table.cells["best"].all()
    assert render_markdown(table).splitlines()[2] == "| Baseline | **85.0** | **70.0** | **77.5** |"
