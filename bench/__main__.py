"""``python -m bench [suite ...] [--quick] [--output FILE]``: run benchmark suites, rewrite BENCHMARKS.md.

Each named suite (default: all of ``bench.SUITES``) is the module ``bench/<suite>.py``; its
``run(quick)`` returns a ``report.Section``, which ``report.render`` writes as Markdown. Only
the sections of the suites that ran are replaced in the output file; the others, and the
file's introduction, are kept.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

from bench import EXTRA_SUITES, SUITES, report
from bench.common import ROOT, progress

DEFAULT_OUTPUT = ROOT / "BENCHMARKS.md"

INTRO = """# Benchmarks

Measured figures of the recommendations app: what capturing events costs a page, how fast
events are stored, and (as suites are added) model quality, training speed and suggestions.
Every figure here is written by `make bench` (that is, `.venv/bin/python -m bench`); run
`python -m bench SUITE` to refresh one section, and do not edit the sections by hand.

The machine these run on is small and shared with other work, so absolute times move from run
to run. Each section therefore reports medians, and compares our code with a baseline measured
side by side in the same run (interleaved), as a ratio; read the ratios, not the milliseconds.
Each section says the command, date, machine and method that produced it.
"""

MARKER = re.compile(r"<!-- bench:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->\n?", re.DOTALL)


def split_document(text: str) -> tuple[str, dict[str, str]]:
    """(introduction, {suite: section body}) of an existing BENCHMARKS.md."""
    first = MARKER.search(text)
    intro = text[: first.start()] if first else text
    sections = {match["name"]: match["body"] for match in MARKER.finditer(text)}
    return intro, sections


def render_document(intro: str, sections: dict[str, str]) -> str:
    order = [name for name in SUITES if name in sections]
    order += [name for name in sections if name not in order]
    parts = [intro.rstrip() + "\n"]
    for name in order:
        parts.append(f"\n<!-- bench:{name} -->\n{sections[name].strip()}\n<!-- /bench:{name} -->\n")
    return "".join(parts)


def update_file(path: Path, results: dict[str, str]) -> None:
    """Replace the sections of ``results`` in ``path`` (created with the introduction if missing)."""
    intro, sections = split_document(path.read_text()) if path.exists() else (INTRO, {})
    if not intro.strip():
        intro = INTRO
    sections.update(results)
    path.write_text(render_document(intro, sections))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "suites", nargs="*", metavar="suite", help=f"suites to run (default: {' '.join(SUITES)})"
    )
    parser.add_argument("--quick", action="store_true", help="shrink every size: a smoke run, not figures")
    parser.add_argument(
        "--output",
        default=str(DEFAULT_OUTPUT),
        help="Markdown file to update (default: BENCHMARKS.md); '-' prints the sections only",
    )
    args = parser.parse_args(argv)
    names = args.suites or list(SUITES)
    unknown = [name for name in names if name not in SUITES + EXTRA_SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; known: {', '.join(SUITES + EXTRA_SUITES)}")

    results: dict[str, str] = {}
    for name in names:
        progress(f"suite {name}{' (quick)' if args.quick else ''}")
        module = importlib.import_module(f"bench.{name}")
        results[name] = report.render(module.run(args.quick))
        print(results[name], flush=True)
    if args.output != "-":
        update_file(Path(args.output), results)
        progress(f"wrote {', '.join(results)} to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
