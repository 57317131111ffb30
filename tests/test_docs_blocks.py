"""Every ```python block of README.md and docs/*.md runs, and prints what the page shows.

Convention (also stated in docs/contributing.md):

* The ```python blocks of one page run in order in one namespace (a fresh one per page), in
  a temporary working directory, with matplotlib's Agg backend. A page defines or loads
  everything it uses (``import bayesfmm as bf``, ``bf.datasets.load(...)``).
* A ```text block that follows a ```python block (nothing but blank lines between them) is
  that block's printed output: what the block writes to stdout must equal it, line by line
  after trailing spaces are stripped. ``...`` alone on a line of the expected text matches
  any number of lines, and ``...`` inside a line matches any text (doctest's ELLIPSIS).
* A block whose first line is ``# docs-test: skip`` is not run (for illustrations that need
  data the page does not have; keep them rare).
* Pages whose blocks take more than 20 s are in ``SLOW_PAGES`` and marked ``slow``.

The test of the runner itself feeds it a page with a deliberately broken block and one with
wrong printed output, and checks that both fail.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# measured on the 2-core dev machine: bayes 45 s, model-selection 46 s, identifiability 20 s; the others < 5 s
SLOW_PAGES = {"bayes.md", "identifiability.md", "model-selection.md"}
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)


def blocks(text: str) -> list[tuple[str, str | None, int]]:
    """(code, expected output or None, line number) of each ```python block of a page."""
    fences = [(m.group(1), m.group(2), m.start(), m.end()) for m in _FENCE.finditer(text)]
    out = []
    for i, (lang, body, start, end) in enumerate(fences):
        if lang != "python":
            continue
        expected = None
        if i + 1 < len(fences):
            nlang, nbody, nstart, _ = fences[i + 1]
            if nlang == "text" and not text[end:nstart].strip():
                expected = nbody
        out.append((body, expected, text[:start].count("\n") + 1))
    return out


def _matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` output matches the page's ``expected`` text (ellipsis rules above)."""
    exp = [line.rstrip() for line in expected.rstrip("\n").split("\n")]
    act = "".join(line.rstrip() + "\n" for line in actual.rstrip("\n").split("\n"))
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line == "..." else "[^\n]*?".join(map(re.escape, line.split("..."))) + r"\n"
        for line in exp
    )
    return re.fullmatch(pattern, act) is not None


def run_page(text: str, name: str) -> None:
    """Run the page's blocks in order in one namespace; raise AssertionError on the first
    block that fails or prints something other than the page shows."""
    namespace: dict = {"__name__": f"docs_{name}"}
    for code, expected, line in blocks(text):
        if code.startswith("# docs-test: skip"):
            continue
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer):
                exec(compile(code, f"{name}:{line}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{name}, block at line {line} raised {type(exc).__name__}: {exc}\n{code}") from exc
        if expected is not None and not _matches(expected, buffer.getvalue()):
            raise AssertionError(
                f"{name}, block at line {line} printed\n{buffer.getvalue()}\nbut the page shows\n{expected}"
            )


def _params():
    for page in PAGES:
        marks = [pytest.mark.slow] if page.name in SLOW_PAGES else []
        yield pytest.param(page, id=page.name, marks=marks)


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield tmp_path
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("page", list(_params()))
def test_page_blocks_run_and_print_what_the_page_shows(page, sandbox):
    run_page(page.read_text(), page.name)


def test_a_page_has_blocks_to_run():
    counts = {page.name: len(blocks(page.read_text())) for page in PAGES}
    assert counts["README.md"] >= 1 and counts["getting-started.md"] >= 5, counts
    assert sum(counts.values()) >= 30, counts


BROKEN = """
Text.

```python
x = 1 + 1
```

```python
print(x + undefined_name)
```
"""

WRONG_OUTPUT = """
```python
print(2 + 2)
```

```text
5
```
"""

RIGHT_OUTPUT = """
```python
print(2 + 2)
print("a long line")
for i in range(3):
    print(i)
```

```text
4
a ... line
...
2
```
"""


def test_a_broken_block_fails_the_runner():
    with pytest.raises(AssertionError, match="undefined_name"):
        run_page(BROKEN, "broken.md")


def test_output_other_than_the_page_shows_fails_the_runner():
    with pytest.raises(AssertionError, match="but the page shows"):
        run_page(WRONG_OUTPUT, "wrong.md")
    run_page(RIGHT_OUTPUT, "right.md")  # and the ellipsis convention matches


def test_skip_marker_and_namespace_per_page():
    run_page("```python\n# docs-test: skip\nraise RuntimeError\n```\n", "skip.md")
    run_page("```python\nshared = 1\n```\n", "one.md")
    with pytest.raises(AssertionError, match="shared"):
        run_page("```python\nprint(shared)\n```\n", "two.md")


if os.environ.get("DOCS_BLOCKS_VERBOSE"):  # pragma: no cover  (a developer aid)
    for _page in PAGES:
        print(_page.name, len(blocks(_page.read_text())))
