"""Benchmarks of the recommendations app; ``python -m bench [suite ...] [--quick]`` (or ``make bench``).

Each suite is a module ``bench/<suite>.py`` with ``run(quick: bool) -> report.Section``: it
measures, and returns what it found as data (``bench/report.py``); ``bench/__main__.py`` runs
the suites asked for, renders each section as Markdown and replaces those sections in
BENCHMARKS.md, keeping the others. Add a suite by writing its module and naming it in
``SUITES`` (in the order the sections appear in BENCHMARKS.md).
"""

#: Suites run by default, in the order of their sections in BENCHMARKS.md.
SUITES: tuple[str, ...] = (
    "capture",
    "learning",
    "ablation",
    "selection",
    "lists",
    "experiments",
    "serving",
    "suggest",
    "scale",
    "catalogue",
)
#: Suites run only when named: ``load`` and ``abuse`` write their sections into RELIABILITY.md
#: (``make load``, ``make abuse``).
EXTRA_SUITES: tuple[str, ...] = ("load", "abuse")
