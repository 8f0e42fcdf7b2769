"""`report --format html`: one self-contained page holding every table of the Markdown report (same texts,
same marks, the CSV export's numbers) and every figure inline; rendered by a headless Chromium where one is
installed. And the terminal: real bold and underline on a tty, the Markdown byte for byte when piped."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser

import pandas as pd
import pytest

from analysis.report import main, render_report
from fixtures_analysis import write_hand_experiment, write_world_experiment

FIGURE_STEMS = {
    *(f"pawsx_fig2_gain_vs_distance_{m}" for m in ("adv", "rs_rp", "rs_da", "rs_syntax")),
    *(f"pawsx_fig3_m_ablation_{m}" for m in ("rs_da", "rs_syntax")),
    *(f"pawsx_fig45_generalized_{m}_minus_baseline" for m in ("adv", "rs_rp", "rs_da", "rs_syntax")),
}
OPTIONS = dict(n_resamples=500)  # the world has predictions: the example-level supplement is on the page too
ANSI = re.compile("\x1b\\[[0-9;]*m")


class Page(HTMLParser):
    """Headings, tables (each cell's text and whether it is bold / underlined), images and every tag's name."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.headings, self.tables, self.images, self.tags = [], [], [], []
        self._heading = self._cell = None
        self._marks: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if re.fullmatch("h[1-6]", tag):
            self._heading = []
        elif tag == "table":
            self.tables.append({"kind": attrs.get("class"), "heading": self.headings[-1] if self.headings else None,
                                "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = {"text": "", "bold": False, "underline": False}
        elif tag in ("strong", "u"):
            self._marks.append(tag)
        elif tag == "img":
            self.images.append(attrs)

    def handle_endtag(self, tag):
        if re.fullmatch("h[1-6]", tag):
            self.headings.append("".join(self._heading))
            self._heading = None
        elif tag in ("td", "th"):
            self.tables[-1]["rows"][-1].append(self._cell)
            self._cell = None
        elif tag in ("strong", "u"):
            self._marks.remove(tag)

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)
        if self._cell is not None:
            self._cell["text"] += data
            self._cell["bold"] |= "strong" in self._marks
            self._cell["underline"] |= "u" in self._marks

    def texts(self, table) -> list[list[str]]:
        return [[cell["text"] for cell in row] for row in table["rows"]]

    def table(self, kind: str) -> dict:
        (found,) = [t for t in self.tables if t["kind"] == kind]
        return found


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every GitHub table of a Markdown text, its cells with the marks (** and <u>) taken out."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            if line.startswith("|---"):
                continue
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            cells = [re.sub(r"\*\*|</?u>", "", c).replace("\\|", "|") for c in cells]
            if current is None:
                current = []
                tables.append(current)
            current.append(cells)
        else:
            current = None
    return tables


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_world_experiment(tmp_path_factory.mktemp("world") / "world")


@pytest.fixture(scope="module")
def page(world):
    return render_report([world], fmt="html", **OPTIONS)


def test_the_page_holds_every_heading_and_table_of_the_markdown_report_and_every_figure(world, page, tmp_path):
    markdown = render_report([world], fmt="markdown", figures_dir=tmp_path, **OPTIONS)  # with its "Figures" list
    parsed = Page(page)
    assert parsed.headings == [re.sub("^#+ ", "", line) for line in markdown.splitlines() if line.startswith("#")]
    expected = markdown_tables(markdown)
    assert len(parsed.tables) == len(expected) == 1 + 1 + 1 + 1 + 1 + 5 + 4 + 0  # main, selection, tests,
    # sensitivity, seeds needed, 5 generalized matrices, 4 differences; no paper comparison on the world
    assert [parsed.texts(t) for t in parsed.tables] == expected
    assert {image["alt"] for image in parsed.images} == FIGURE_STEMS
    for image in parsed.images:
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix), image["alt"]
        png = base64.b64decode(image["src"][len(prefix):], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])  # IHDR
        assert width >= 300 and height >= 300, (image["alt"], width, height)
    assert "Bold: best per column. Underline: improvement over Baseline with p ≤ 0.05" in page  # the legend


def test_the_pages_numbers_and_marks_are_the_csv_exports(world, page):
    cells = pd.read_csv(io.StringIO(render_report([world], fmt="csv", **OPTIONS)))
    parsed = Page(page)
    main_table = parsed.table("results")
    header = [cell["text"] for cell in main_table["rows"][0]]
    assert header == ["Method", "en", "xa", "xb", "xc", "avg"]
    shown = {(row[0]["text"], column): cell for row in main_table["rows"][1:] for column, cell in zip(header[1:], row[1:])}
    assert len(shown) == len(cells) == 25
    for cell in cells.itertuples():
        html_cell = shown[(cell.row, cell.column)]
        assert html_cell["text"] == f"{cell.mean:.1f}", (cell.row, cell.column)
        assert html_cell["bold"] == cell.best and html_cell["underline"] == cell.significant, (cell.row, cell.column)
    assert cells["significant"].any() and not cells["significant"].all()  # the marks are tested both ways
    tests = parsed.table("tests")
    columns = [cell["text"] for cell in tests["rows"][0]]
    rows = {row[0]["text"]: dict(zip(columns, (c["text"] for c in row))) for row in tests["rows"][1:]}
    tested = cells[cells["method"] != "baseline"]
    assert len(rows) == len(tested) == 20
    for cell in tested.itertuples():
        row = rows[f"{cell.row} / {cell.column}"]
        assert row["p (bootstrap)"] == f"{cell.p:.4f}" and row["p (Holm)"] == f"{cell.p_holm:.4f}"
        assert row["p ttest_rel"] == f"{cell.p_ttest_rel:.4f}" and row["p sign-flip"] == f"{cell.p_sign_flip:.4f}"
        assert row["p example-level"] == f"{cell.p_example:.4f}"
        assert row["difference [95% CI]"] == f"{cell.mean_diff:+.2f} [{cell.ci_low:+.2f}, {cell.ci_high:+.2f}]"
        assert row["marked"] == ("yes" if cell.significant else "")
    seeds = {row[0]["text"]: [c["text"] for c in row[1:]] for row in parsed.table("seeds-needed")["rows"][1:]}
    for cell in tested.itertuples():
        assert seeds[cell.row][header.index(cell.column) - 1] == f"{int(cell.seeds_needed)} (sd {cell.sd_diff:.2f})"


def test_the_page_needs_nothing_from_outside_and_escapes_the_results_names(tmp_path):
    root = write_hand_experiment(tmp_path / "hand", skip=[("rs_rp-eps0.1", 2)])
    document = json.loads((root / "experiment.json").read_text())
    document["methods"] = {"baseline": {"display": "Baseline"}, "rs_rp": {"display": "RS<RP> & co"}}
    (root / "experiment.json").write_text(json.dumps(document))
    page = render_report([root], fmt="html", n_resamples=200, example_level=False)
    parsed = Page(page)
    assert set(parsed.tags) <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "div", "table",
                                "thead", "tbody", "tr", "th", "td", "strong", "u", "ul", "li", "figure", "img",
                                "figcaption"}  # no script, link, iframe, object
    assert parsed.images and all(image["src"].startswith("data:image/png;base64,") for image in parsed.images)
    assert not re.search(r"https?://|url\(|@import", page)
    rows = [row[0]["text"] for row in parsed.table("results")["rows"][1:]]
    assert rows == ["Baseline", "RS<RP> & co (eps=0.1)"] and "<RP>" not in page
    # the notes on incomplete data, the comparison with the paper and its intervals
    assert "3 cell(s) have fewer seeds than planned (shown n/N, never marked)" in page
    assert parsed.texts(parsed.table("results"))[2] == ["RS<RP> & co (eps=0.1)", "80.0 (2/3)", "73.0 (2/3)", "76.5 (2/3)"]
    paper = parsed.table("paper")
    assert [c["text"] for c in paper["rows"][2]] == ["RS<RP> & co (eps=0.1)", "80.0 / 94.5 (-14.5)", "73.0 / 87.4 (-14.4)"]
    assert paper["rows"][2][1]["underline"] and not paper["rows"][1][1]["underline"]  # the paper's own marks
    assert parsed.table("paper-interval")["rows"][1][1]["text"] == "[77.0, 87.0] out"


def test_cli_writes_the_page_atomically_and_refuses_a_folder_before_computing(world, tmp_path, capsys):
    folder = tmp_path / "taken"
    folder.mkdir()
    assert main([str(world), "--format", "html", "--out", str(folder)]) == 2
    assert f"--out: {folder} is a folder" in capsys.readouterr().err
    assert list(folder.iterdir()) == []
    out, figures = tmp_path / "report.html", tmp_path / "figures"
    assert main([str(world), "--format", "html", "--out", str(out), "--figures", str(figures), "--resamples", "200",
                 "--no-example-level"]) == 0
    assert capsys.readouterr().out == ""
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    assert {image["alt"] for image in Page(page).images} == FIGURE_STEMS
    assert f"<li>{figures / 'pawsx_fig2_gain_vs_distance_rs_da.pdf'}</li>" in page  # the files written, listed
    assert {p.stem for p in figures.iterdir()} == FIGURE_STEMS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "report.html", "taken"]  # no temporary left


def chromium() -> str | None:
    return next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome", "chrome")
                 if shutil.which(name)), None)


@pytest.mark.skipif(chromium() is None, reason="no headless Chromium (Debian's `chromium` package) on this machine")
def test_chromium_renders_the_page_offline_with_its_figures(page, tmp_path):
    from matplotlib.image import imread

    source, shot = tmp_path / "report.html", tmp_path / "shot.png"
    source.write_text(page, encoding="utf-8")
    completed = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,9000",
         source.as_uri()], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0 and shot.exists(), completed.stderr[-2000:]
    pixels = imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (9000, 1280)
    dark = (pixels.max(axis=2) < 0.4).mean()  # text and rules
    coloured = ((pixels.max(axis=2) - pixels.min(axis=2)) > 0.35).mean()  # the figures' points, lines and heatmaps
    assert dark > 0.002, dark
    assert coloured > 0.001, coloured


# ---- the terminal --------------------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def plain(text: str) -> str:
    """Without marks of either kind and without the terminal's column padding."""
    text = re.sub(" +", " ", re.sub(r"\*\*|</?u>", "", ANSI.sub("", text)))
    return re.sub(r"^\|[-:|]+\|$", "|---|", text, flags=re.MULTILINE)


def test_a_terminal_shows_real_bold_and_underline_and_a_pipe_the_markdown_byte_for_byte(tmp_path, capsys, monkeypatch):
    root = write_hand_experiment(tmp_path / "hand")
    arguments = [str(root), "--no-example-level", "--resamples", "300"]
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert main(arguments) == 0
    piped = capsys.readouterr().out
    assert piped == render_report([root], fmt="markdown", n_resamples=300, example_level=False)
    assert "| RS-RP (eps=0.1) | 81.0 | **<u>74.0</u>** | **<u>77.5</u>** |" in piped and "\x1b" not in piped
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    assert main(arguments) == 0
    shown = terminal.getvalue()
    assert "**" not in shown and "<u>" not in shown
    assert "| RS-RP (eps=0.1) | 81.0 | \x1b[1m\x1b[4m74.0\x1b[24m\x1b[22m | \x1b[1m\x1b[4m77.5\x1b[24m\x1b[22m |" in shown
    assert "| Method          |   en |   de |  avg |\n" in shown  # columns aligned
    assert "| Baseline        | \x1b[1m82.0\x1b[22m | 72.0 | 77.0 |" in shown
    assert "81.0 / \x1b[4m94.5\x1b[24m (-13.5)" in shown  # the paper's underline too
    assert plain(shown) == plain(piped)  # the same report, nothing more or less
    monkeypatch.setenv("NO_COLOR", "1")
    terminal.seek(0), terminal.truncate()
    assert main(arguments) == 0
    assert terminal.getvalue() == piped
    monkeypatch.delenv("NO_COLOR")
    out = tmp_path / "report.md"
    terminal.seek(0), terminal.truncate()
    assert main([*arguments, "--out", str(out)]) == 0
    assert out.read_text() == piped and terminal.getvalue() == ""  # a file is Markdown, whatever stdout is
    assert main([*arguments, "--format", "csv"]) == 0
    assert "\x1b" not in terminal.getvalue() and terminal.getvalue().startswith("task,method,row,column,mean")


def test_the_demo_prints_the_report_for_the_terminal_or_the_pipe(tmp_path, monkeypatch):
    from sweeper.demo import print_report

    monkeypatch.delenv("NO_COLOR", raising=False)
    root = write_hand_experiment(tmp_path / "hand")
    piped, terminal = io.StringIO(), Terminal()
    print_report(root, piped)
    print_report(root, terminal)
    assert piped.getvalue() == render_report([str(root)], fmt="markdown") + "\n"
    assert "\x1b[1m\x1b[4m74.0\x1b[24m\x1b[22m" in terminal.getvalue() and "**" not in terminal.getvalue()
    assert plain(terminal.getvalue()) == plain(piped.getvalue())
    empty = tmp_path / "empty"
    empty.mkdir()
    print_report(empty, piped)
    assert "no table: " in piped.getvalue()
