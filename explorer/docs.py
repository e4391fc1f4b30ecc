"""The generated parts of the docs, each written from the data it shows, never typed: a block between
`<!-- generated: NAME -->` and `<!-- end generated -->` in a Markdown file, or a whole file.
`python -m explorer docs` writes them all; `--check` says which differ (a test runs it). A measured table's
data is kept beside the docs (docs/measured/*.json, written by the benchmark's --save) or with its module
(explorer/lessons_measured.json)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
END = "<!-- end generated -->"


def _exercise_coverage() -> str:
    from explorer import exercises

    return exercises.coverage_markdown()


def _exercises() -> str:
    from explorer import exercise_runs, exercises

    return exercises.markdown(exercise_runs.markdown_lines)


def _bench(what: str) -> Callable[[], str]:
    def make() -> str:
        from explorer import measured

        return getattr(measured, f"{what}_markdown")()

    return make


def _lessons() -> str:
    from explorer import lessons

    return lessons.markdown()


# (file, block name or None for the whole file, what writes it)
GENERATED: tuple[tuple[str, str | None, Callable[[], str]], ...] = (
    ("README.md", "exercise coverage", _exercise_coverage),
    ("docs/exercises.md", None, _exercises),
    ("docs/lessons.md", "lessons measured", _lessons),
    ("docs/performance.md", "summary timings", _bench("summary")),
    ("docs/performance.md", "memory against peaks", _bench("memory")),
    ("docs/performance.md", "dynamics cost", _bench("dynamics")),
    ("docs/performance.md", "inference", _bench("inference")),
    ("docs/performance.md", "speedrun", _bench("speedrun")),
    ("docs/performance.md", "train efficiency", _bench("train")),
    ("docs/hosting.md", "store per run", _bench("store")),
)


def rendered(path: str, block: str | None, make: Callable[[], str]) -> str:
    """The file's text with its block (or all of it) as `make` writes it now."""
    if block is None:
        return make()
    text = (ROOT / path).read_text()
    begin = f"<!-- generated: {block} -->\n"
    start = text.index(begin) + len(begin)
    return text[:start] + make() + text[text.index(END, start):]


def stale() -> list[str]:
    """The generated files whose text differs from what their data writes now."""
    return [path for path, block, make in GENERATED if (ROOT / path).read_text() != rendered(path, block, make)]


def write() -> list[str]:
    """Write every generated part; the files that changed."""
    changed = stale()
    for path, block, make in GENERATED:
        (ROOT / path).write_text(rendered(path, block, make))
    return changed
