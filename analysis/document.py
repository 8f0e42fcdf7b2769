"""The report as blocks (headings, paragraphs, tables, lists, figures) and its three layouts of them.

`analysis.report` builds the blocks of a report once per format, with every text already written for
that format (marks through `analysis.tables.MARKUP`, plain text escaped); the functions here only lay
them out: GitHub Markdown (what `report` prints and writes), a terminal's text (the same Markdown with
ANSI bold and underline, its tables' columns aligned) and one self-contained HTML page (inline CSS,
figures as base64 PNG; nothing fetched from anywhere).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from typing import Sequence, Union

import pandas as pd

from analysis.tables import MARKUP, markdown_grid


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Grid:
    """A table of texts: `corner` heads the index column; `kind` names what it is (a CSS class in HTML)."""

    frame: pd.DataFrame
    corner: str
    kind: str


@dataclass(frozen=True)
class Items:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Image:
    """A PNG figure; `caption` is its file stem (the name `--figures` writes it under)."""

    caption: str
    png: bytes


@dataclass(frozen=True)
class Images:
    images: tuple[Image, ...]


Block = Union[Heading, Paragraph, Grid, Items, Images]


# ---- Markdown ------------------------------------------------------------------------------------

def markdown_block(block: Block) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + block.text
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Grid):
        return markdown_grid(block.frame, block.corner)
    if isinstance(block, Items):
        return "\n".join(f"- {item}" for item in block.items)
    raise TypeError(f"Markdown has no layout for {type(block).__name__} blocks")


def render_markdown_blocks(blocks: Sequence[Block]) -> str:
    return "\n\n".join(markdown_block(b) for b in blocks) + "\n"


# ---- terminal ------------------------------------------------------------------------------------

_ANSI = re.compile("\x1b\\[[0-9;]*m")


def visible_width(text: str) -> int:
    return len(_ANSI.sub("", text))


def aligned_grid(frame: pd.DataFrame, corner: str) -> str:
    """The Markdown table with padded columns: the label column left-aligned, the others right-aligned."""
    rows = [[corner, *map(str, frame.columns)], *([str(i), *map(str, row)] for i, row in zip(frame.index, frame.to_numpy()))]
    widths = [max(visible_width(row[j]) for row in rows) for j in range(len(rows[0]))]

    def line(cells: Sequence[str]) -> str:
        padded = [cell + " " * (widths[0] - visible_width(cell)) if j == 0 else " " * (widths[j] - visible_width(cell)) + cell
                  for j, cell in enumerate(cells)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    return "\n".join([line(rows[0]), rule, *map(line, rows[1:])])


def terminal_block(block: Block) -> str:
    if isinstance(block, Heading):
        return MARKUP["terminal"].bold("#" * block.level + " " + block.text)
    if isinstance(block, Grid):
        return aligned_grid(block.frame, block.corner)
    return markdown_block(block)


def render_terminal_blocks(blocks: Sequence[Block]) -> str:
    return "\n\n".join(terminal_block(b) for b in blocks) + "\n"


# ---- HTML ----------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1b1b1b;
       margin: 2rem auto; max-width: 78rem; padding: 0 1.5rem; line-height: 1.45; }
h1 { font-size: 1.7rem; } h2 { font-size: 1.35rem; margin-top: 2.5rem; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05rem; margin-top: 1.8rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.6rem 0; font-variant-numeric: tabular-nums; font-size: 0.92rem; }
th, td { padding: 0.22rem 0.7rem; border-bottom: 1px solid #e2e2e2; white-space: nowrap; }
td { text-align: right; }
th { text-align: left; }
tbody th { font-weight: normal; }
thead th { border-bottom: 2px solid #555; text-align: right; }
thead th:first-child { text-align: left; }
tbody tr:nth-child(even) { background: #f6f6f6; }
table.results td, table.sensitivity td { font-size: 1rem; }
strong { font-weight: 700; }
u { text-decoration-thickness: 2px; text-underline-offset: 2px; }
p, li { max-width: 62rem; }
.figures { display: flex; flex-wrap: wrap; gap: 1.2rem; }
figure { margin: 0; max-width: calc(50% - 0.6rem); } figure img { max-width: 100%; height: auto; border: 1px solid #e2e2e2; }
figcaption { font-size: 0.8rem; color: #555; font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
"""


def html_grid(block: Grid) -> str:
    head = "".join(f"<th>{c}</th>" for c in (block.corner, *map(str, block.frame.columns)))
    body = "\n".join(
        f'<tr><th scope="row">{index}</th>' + "".join(f"<td>{value}</td>" for value in row) + "</tr>"
        for index, row in zip(block.frame.index, block.frame.to_numpy())
    )
    return (f'<div class="scroll"><table class="{block.kind}">\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody></table></div>")


def html_image(image: Image) -> str:
    data = base64.b64encode(image.png).decode("ascii")
    caption = html.escape(image.caption)
    return f'<figure><img alt="{caption}" src="data:image/png;base64,{data}"><figcaption>{caption}</figcaption></figure>'


def html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{block.text}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{block.text}</p>"
    if isinstance(block, Grid):
        return html_grid(block)
    if isinstance(block, Items):
        return "<ul>\n" + "\n".join(f"<li>{item}</li>" for item in block.items) + "\n</ul>"
    if isinstance(block, Images):
        return '<div class="figures">\n' + "\n".join(map(html_image, block.images)) + "\n</div>"
    raise TypeError(f"HTML has no layout for {type(block).__name__} blocks")


def render_html_blocks(blocks: Sequence[Block], title: str) -> str:
    """One HTML page holding everything: the style inline, the figures as data: URIs."""
    body = "\n".join(map(html_block, blocks))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{html.escape(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
