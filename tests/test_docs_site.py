"""The documentation site and the packaging metadata (issue 16).

* ``mkdocs build --strict`` builds the site (warnings are errors) and
  ``tools/check_site.py`` finds no problem in headless Chromium: pages load, links and
  anchors resolve, figures are present (slow; skipped where mkdocs or Chromium is absent,
  CI runs it through ``make docs-check``).
* Every third-party package the code imports is a declared dependency; the licence file,
  its metadata and the ``py.typed`` marker are there.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _imported_top_level(package: Path) -> set[str]:
    names = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _requirement_name(text: str) -> str:
    return re.split(r"[<>=!~\[; ]", text, maxsplit=1)[0].lower().replace("_", "-")


def test_every_imported_third_party_package_is_declared():
    imported = _imported_top_level(ROOT / "bayesfmm") - set(sys.stdlib_module_names) - {"bayesfmm"}
    declared = {_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    optional = {_requirement_name(r) for extra in PYPROJECT["project"]["optional-dependencies"].values() for r in extra}
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module in sorted(imported):
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not dists & (declared | optional):
            missing.append(f"{module} ({', '.join(sorted(dists))})")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
    for name in ("xarray", "arviz-stats", "arviz-plots", "joblib"):
        assert name in declared


def test_licence_authors_and_typing_marker():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert project["authors"]
    assert (ROOT / "bayesfmm" / "py.typed").exists()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["bayesfmm"]
    assert "mkdocs-material>=9.5" in project["optional-dependencies"]["docs"]


def test_every_docs_page_is_in_the_site_navigation():
    text = (ROOT / "mkdocs.yml").read_text()
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    listed = set(re.findall(r":\s*([\w-]+\.md)\s*$", text, re.M))
    assert pages == listed, (pages - listed, listed - pages)


@pytest.mark.slow
def test_site_builds_strict_and_passes_the_browser_check(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("the docs extra is not installed (pip install -e '.[docs]')")
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import check_site
    finally:
        sys.path.pop(0)
    if check_site.chromium() is None:
        pytest.skip("no Chromium (Debian: apt-get install chromium)")
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert build.returncode == 0, build.stdout + build.stderr
    for page in ("index.html", "stata.html", "postestimation.html", "api.html", "examples.html"):
        assert (site / page).is_file()
    api = (site / "api.html").read_text()
    for name in ("from_stata", "MLResults", "margins", "plot_rootogram", "register_family"):
        assert name in api
    problems = check_site.check(site, tmp_path / "shots")
    assert problems == []
    assert len(list((tmp_path / "shots").glob("*.png"))) >= 15


def _check_site_module():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import check_site
    finally:
        sys.path.pop(0)
    return check_site


def test_site_check_flags_resources_loaded_from_the_network():
    # a page that fetches a font or script from the network renders differently offline and
    # can hang headless Chromium (a CI run's screenshot passed 120 s waiting on Google Fonts)
    check_site = _check_site_module()
    page = check_site._parse(
        '<html><head><title>t</title>'
        '<link rel="preconnect" href="https://fonts.gstatic.com">'
        '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">'
        '<link rel="stylesheet" href="assets/main.css"><script src="assets/app.js"></script>'
        '<a href="https://github.com">code</a></head></html>'
    )
    remote = [r for r in page.resources if r.startswith("https://")]
    assert remote == ["https://fonts.gstatic.com", "https://fonts.googleapis.com/css?family=Roboto"]
    assert "assets/app.js" in page.resources and "https://github.com" not in page.resources
    assert "font: false" in (ROOT / "mkdocs.yml").read_text()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_site_check_turns_a_hung_browser_into_a_reported_problem(monkeypatch, tmp_path):
    """A command past its timeout is killed with its whole process group (a child it
    started included) and reported as None; Chromium gets one retry, then gives up."""
    import time

    check_site = _check_site_module()
    pidfile = tmp_path / "child.pid"
    started = check_site._run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout=1.0)
    assert started is None
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5.0
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    finished = check_site._run(["sh", "-c", "echo done"], timeout=30.0)
    assert finished.returncode == 0 and finished.stdout.strip() == "done"
    calls = []

    def hang(command, timeout):
        calls.append(command)
        return None

    monkeypatch.setattr(check_site, "_run", hang)
    assert check_site._browser("chromium", "--dump-dom", "http://127.0.0.1/") is None
    assert len(calls) == 2  # one retry, then it gives up
