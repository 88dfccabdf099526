"""The notebooks and the docs site.

One Sphinx build (warnings are errors) executes every notebook in quick mode; the checks below read
its record (``notebook_execution.json``) and its pages, then serve the site from 127.0.0.1 and open
the notebook pages and pages with formulas in headless Chromium with every other host unreachable,
checking that figures and formulas are drawn and that every file a page asked for was there.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from browser import dump_dom
from grokinterp.report.html import mathjax_source

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
QUICK_LIMIT_S = 90  # one notebook in quick mode (they take seconds to tens of seconds)


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        msg = f"{module} is not installed; install the docs extra: pip install -e '.[test,docs]'"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


@dataclass
class Build:
    returncode: int
    log: str
    html: Path
    seconds: float

    def executed(self) -> dict:
        path = self.html / "notebook_execution.json"
        return json.loads(path.read_text()) if path.exists() else {}


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Build:
    for module in ("sphinx", "myst_nb", "pydata_sphinx_theme", "ipykernel"):
        _need(module)
    out = tmp_path_factory.mktemp("docs")
    env = {**os.environ, "GROKINTERP_QUICK": "1", "GROKINTERP_THREADS": "1", "GROKINTERP_NB_EXECUTION": "force",
           "GROKINTERP_OUT": str(out / "runs")}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html",
         "-d", str(out / "doctrees"), str(ROOT / "docs"), str(out / "html")],
        capture_output=True, text=True, env=env, timeout=1500,
    )
    return Build(proc.returncode, proc.stdout[-4000:] + proc.stderr[-8000:], out / "html", time.perf_counter() - start)


# ------------------------------------------------------------------------------- the notebooks
def test_the_notebooks_are_committed_clean_with_parameters():
    import nbformat

    assert NOTEBOOKS == ["01_grokking", "02_tickets", "03_controls", "04_structure", "05_periodic_structure",
                         "06_circuit", "07_multiplication", "08_clock_or_pizza"]
    for name in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{name}: exactly one cell tagged 'parameters'"
        assert 'os.environ.get("GROKINTERP_QUICK"' in tagged[0].source, f"{name}: parameters read GROKINTERP_QUICK"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name} is saved with outputs"
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), f"{name}: a title first"
        # only the public API: no private modules or names
        assert not re.search(r"grokinterp(\.\w+)*\._", "\n".join(c.source for c in code)), name


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes_in_quick_mode(build, name):
    record = build.executed().get(f"notebooks/{name}")
    assert record is not None, f"{name} was not executed by the docs build:\n{build.log}"
    report = build.html / "reports" / "notebooks" / f"{name}.err.log"
    assert record["succeeded"], f"{name} failed ({record['error']}):\n" + (
        report.read_text()[-6000:] if report.exists() else build.log)
    assert record["runtime_s"] < QUICK_LIMIT_S, f"{name} took {record['runtime_s']:.0f} s in quick mode"
    page = (build.html / "notebooks" / f"{name}.html").read_text()
    assert "cell_output" in page and "Traceback" not in page, name


# ------------------------------------------------------------------------------------ the site
def test_docs_build_without_warnings(build):
    assert build.returncode == 0, f"sphinx-build -W failed:\n{build.log}"
    for page in ("index", "getting-started", "concepts", "howto/index", "api/index", "api/fourier", "notebooks/index"):
        assert (build.html / f"{page}.html").exists(), page
    api = (build.html / "api" / "fourier.html").read_text()
    assert 'id="grokinterp.fourier.spectra.key_frequencies"' in api, "the API reference is generated from docstrings"


def test_pages_load_nothing_from_elsewhere(build):
    pages = list(build.html.rglob("*.html"))
    assert len(pages) > 10
    for page in pages:
        text = page.read_text()
        assert not re.search(r"""<script[^>]+src=["']?(https?:)?//""", text), f"{page}: external script"
        assert not re.search(r"""<link[^>]+href=["']?(https?:)?//""", text), f"{page}: external link tag"
        assert not re.search(r"""<script[^>]+src=["']?[^"'>]*require""", text, re.I), f"{page}: require.js"
        for src in re.findall(r"""<script[^>]+src=["']?([^"'> ]*mathjax[^"'> ]*)""", text, re.I):
            assert src.endswith("_static/mathjax/tex-svg.js") and "//" not in src, f"{page}: MathJax from {src}"
        assert not re.search(r"cdn\.plot\.ly|unpkg\.com|cdn\.jsdelivr|cdnjs\.", text, re.I), f"{page}: CDN address"
    plotly_js = list(build.html.rglob("plotly*.js"))
    assert [p.relative_to(build.html).as_posix() for p in plotly_js] == ["_static/plotly.min.js"], "one plotly.js"
    assert plotly_js[0].stat().st_size > 1_000_000
    mathjax = [p.relative_to(build.html).as_posix() for p in build.html.rglob("*.js") if "mathjax" in p.as_posix().lower()]
    assert mathjax == ["_static/mathjax/tex-svg.js"], "one MathJax, the single-file build"
    assert (build.html / mathjax[0]).read_bytes() == mathjax_source().read_bytes(), "the installed package's file"


@pytest.fixture(scope="module")
def server(build):
    assert build.returncode == 0, f"sphinx-build -W failed:\n{build.log}"
    QuietHandler.requests.clear()
    handler = functools.partial(QuietHandler, directory=str(build.html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site without printing; remembers (path, status) of every request."""

    requests: list[tuple[str, int]] = []

    def log_message(self, *args) -> None:
        pass

    def log_request(self, code="-", size="-") -> None:
        QuietHandler.requests.append((self.path, int(getattr(code, "value", code))))


def _load(server: str, page: str) -> str:
    """The page's DOM after its scripts ran; fails if it asked the server for anything missing."""
    QuietHandler.requests.clear()
    dom = dump_dom(f"{server}/{page}")
    # (the browser asks for /favicon.ico by itself; the site has none)
    missing = [(path, code) for path, code in QuietHandler.requests if code >= 400 and path != "/favicon.ico"]
    assert not missing, f"{page} asked for files that are not in the site: {missing}"
    return dom


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_page_draws_its_figures_offline(build, server, name):
    page = (build.html / "notebooks" / f"{name}.html").read_text()
    n_figures = page.count('class="plotly-graph-div"')
    assert n_figures >= 1, f"{name}: no plotly figure on the page"
    dom = _load(server, f"notebooks/{name}.html")
    assert dom.count("js-plotly-plot") >= n_figures, f"{name}: not every figure was drawn"
    assert dom.count('class="main-svg"') >= 2 * n_figures  # plotly draws two svg layers per figure
    if name == "06_circuit":
        assert re.search(r'id="circuits-vis-[^"]+"[^>]*>\s*<div', dom), "the attention view is drawn"


# ------------------------------------------------------------------------------------- formulas
MATH_PAGES = ["concepts", "howto/hooks", "howto/legacy-checkpoints", "notebooks/01_grokking", "notebooks/06_circuit",
              "notebooks/08_clock_or_pizza"]


@pytest.mark.parametrize("page", MATH_PAGES)
def test_formulas_are_drawn_as_maths_offline(build, server, page):
    html = (build.html / f"{page}.html").read_text()
    n_math = len(re.findall(r'class="math notranslate nohighlight"', html))
    assert n_math >= 3, f"{page}: its formulas are not maths ({n_math} math elements)"
    assert re.search(r'<script[^>]+src="(\.\./)*_static/mathjax/tex-svg\.js"', html), f"{page}: no local MathJax"
    dom = _load(server, f"{page}.html")
    drawn = re.findall(r"<mjx-container.*?</mjx-container>", dom, re.S)
    assert len(drawn) == n_math, f"{page}: {len(drawn)} of {n_math} formulas drawn"
    assert all("<svg" in d and 'data-mml-node="merror"' not in d for d in drawn), f"{page}: a formula has a TeX error"
    assert not re.search(r"\\\(|\\\[|\$\$", " ".join(re.findall(r'<span class="math[^"]*">(.*?)</span>', dom))), \
        f"{page}: TeX left undrawn"


def test_pages_without_formulas_load_no_mathjax(build):
    for page in ("index", "howto/sweeps", "api/fourier"):
        html = (build.html / f"{page}.html").read_text()
        assert "notranslate nohighlight" not in html and "tex-svg.js" not in html, page


# ---------------------------------------------------------------------------- executed how-tos
def test_legacy_checkpoint_how_to_runs_its_code(build):
    record = build.executed().get("howto/legacy-checkpoints")
    assert record is not None and record["succeeded"], f"the legacy-checkpoints page did not run: {record}\n{build.log}"
    page = (build.html / "howto" / "legacy-checkpoints.html").read_text()
    assert page.count("cell_output") >= 5 and "Traceback" not in page
    assert "layout: clock_pizza" in page and "grid accuracy: 1.0" in page  # the authors' released model A
    assert "clock or pizza: clock" in page  # model B, analysed
    assert page.count("largest logit difference 0.0e+00") == 4  # every checkpoint of the demo-layout file
    assert "none of the layouts grokinterp reads" in page
