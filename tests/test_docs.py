"""The docs stay true: every Python snippet runs, every relative link and image resolves,
and the API reference names every public object."""

import pathlib
import re

import matplotlib
import pytest

import convlab as cl

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
SNIPPET = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
REQUIRES = re.compile(r"<!-- requires: ([\w, .-]+) -->")  # a page's optional extras, e.g. "dask, zarr"


def _snippets(page):
    return SNIPPET.findall(page.read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", [p for p in PAGES if _snippets(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_snippets_run(page, capsys):
    """Each page's Python blocks run top to bottom in one namespace (as a reader would)."""
    for match in REQUIRES.findall(page.read_text(encoding="utf-8")):
        for module in match.split(","):
            pytest.importorskip(module.strip())
    namespace = {"__name__": f"docs_{page.stem}"}
    matplotlib.use("Agg")
    for number, code in enumerate(_snippets(page), start=1):
        try:
            exec(compile(code, f"{page.name} snippet {number}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{page.relative_to(ROOT)} snippet {number} failed: {exc!r}\n{code}") from exc


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_images_resolve(page):
    text = page.read_text(encoding="utf-8")
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


def test_api_reference_names_every_public_object():
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [name for name in cl.__all__ if not re.search(rf"`(cl\.|convlab\.)?{re.escape(name)}\b", api)]
    assert not missing, f"docs/api.md does not document: {missing}"


def test_api_reference_is_in_step_with_the_docstrings():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_api", ROOT / "docs" / "make_api.py")
    make_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_api)
    assert make_api.render() == (ROOT / "docs" / "api.md").read_text(encoding="utf-8"), (
        "docs/api.md is out of date: run `python docs/make_api.py`")
