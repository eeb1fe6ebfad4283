"""A benchmark's results as data, and the one renderer that writes them as Markdown.

Each suite's ``run(quick)`` measures, then assembles a ``Section``: its title, the facts of
the run (command, date, machine, method) and its blocks in reading order: paragraphs (plain
strings), ``Table``s, ``Figure``s and ``Part``s, the subsections, which hold blocks of their
own. ``render(section)`` is the only code that writes Markdown syntax; ``bench/__main__.py``
calls it and puts the text between the section's markers in BENCHMARKS.md.

What a paragraph or a cell says is the suite's: its wording may name code in backticks, and
``strong()`` and ``verdict()`` mark the figures a reader should see first. Integer cells are
written with thousands separators and ``None`` as "-"; a float must come worded (how many
digits is part of what the cell says), with the helpers below when more than one suite
words it the same way.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from datetime import datetime

#: What a table cell holds: text as shown, a count, or nothing ("-").
Cell = str | int | None


@dataclasses.dataclass(frozen=True)
class Table:
    """Rows under column headings; the first column is labels, the others figures."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Cell]]


@dataclasses.dataclass(frozen=True)
class Figure:
    """A chart the suite drew: its file (relative to the repository root), what it shows, its size."""

    path: str
    alt: str
    size_bytes: int


@dataclasses.dataclass(frozen=True)
class Part:
    """A subsection: a heading one level below its parent's and its blocks."""

    title: str
    blocks: Sequence[Block]


Block = str | Table | Figure | Part


@dataclasses.dataclass(frozen=True)
class Section:
    """One suite's section of BENCHMARKS.md: how it was measured, then what it found."""

    title: str
    command: str
    date: datetime
    machine: str
    method: str
    quick: bool
    blocks: Sequence[Block]


# --- wording shared by the suites ----------------------------------------------------------


def strong(text: object) -> str:
    """``text`` emphasized: the figure or verdict a reader should see first."""
    return f"**{text}**"


def verdict(ok: bool) -> str:
    """A target's outcome: "met", or an emphasized "missed"."""
    return "met" if ok else strong("missed")


def decimals(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals; "-" when there is none."""
    return "-" if value is None else f"{value:.{digits}f}"


def ratio_text(value: float | None) -> str:
    """A ratio with two decimals, "∞" over zero, "-" when there is none."""
    if value is None:
        return "-"
    return "∞" if value == float("inf") else f"{value:.2f}"


def ms(seconds: float) -> str:
    """Seconds as milliseconds with two decimals and the unit."""
    return f"{seconds * 1000:.2f} ms"


# --- the renderer --------------------------------------------------------------------------

QUICK_NOTE = "> **Quick smoke run** (`--quick`): sizes shrunk, figures not representative."


def render(section: Section) -> str:
    """The section as Markdown: a level-2 heading, the facts of the run, then every block."""
    header = [f"## {section.title}"]
    if section.quick:
        header.append(QUICK_NOTE)
    header.append(
        "\n".join(
            [
                f"- Command: `{section.command}`",
                f"- Date: {section.date:%Y-%m-%d %H:%M UTC}",
                f"- Machine: {section.machine}",
                f"- Method: {section.method}",
            ]
        )
    )
    return "\n\n".join(header + [render_block(block, 3) for block in section.blocks]) + "\n"


def render_block(block: Block, level: int) -> str:
    if isinstance(block, str):
        return block
    if isinstance(block, Table):
        return render_table(block)
    if isinstance(block, Figure):
        return (
            f"![{block.alt}]({block.path})\n\n"
            f"(Chart: [`{block.path}`]({block.path}), {block.size_bytes / 1024:.0f} KB.)"
        )
    if isinstance(block, Part):
        heading = f"{'#' * level} {block.title}"
        return "\n\n".join([heading] + [render_block(child, level + 1) for child in block.blocks])
    raise TypeError(f"not a block of a report: {block!r}")


def render_table(table: Table) -> str:
    """A Markdown table; the first column is left-aligned, the others right-aligned."""
    width = len(table.columns)
    lines = [row_line(table.columns), row_line([":---"] + ["---:"] * (width - 1))]
    for row in table.rows:
        if len(row) != width:
            raise ValueError(f"a row of {len(row)} cells under {width} columns: {row!r}")
        lines.append(row_line([cell_text(cell) for cell in row]))
    return "\n".join(lines)


def row_line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def cell_text(cell: Cell) -> str:
    if cell is None:
        return "-"
    if isinstance(cell, numbers.Integral) and not isinstance(cell, bool):  # numpy's integers too
        return f"{cell:,}"
    if isinstance(cell, str):
        return cell
    raise TypeError(f"a table cell must be text, an integer or None, not {cell!r}")
