"""Sphinx configuration of the grokinterp docs.

The site builds and reads offline:

- one plotly.js for every page, copied from the installed plotly package into ``_static``; the
  notebooks' figures are ``<div>``s that draw with it (:func:`grokinterp.report.plotting.use_offline_renderer`);
- formulas (``$...$`` and ``$$...$$`` in the Markdown pages and the notebooks' Markdown cells,
  ``{math}``) are drawn by MathJax 3 from the installed ``django-static-mathjax`` package: its
  single-file ``tex-svg.js`` build (everything in one script, nothing loaded later) is copied into
  ``_static/mathjax/``, the file grokinterp's HTML reports use too
  (:func:`grokinterp.report.html.mathjax_source`); pages without a formula do not load it;
- no require.js, no widget scripts, nothing from a CDN;
- the notebooks are executed during the build in quick mode (``GROKINTERP_QUICK=1``), writing their
  runs to a temporary folder (``GROKINTERP_OUT`` overrides it). A notebook that fails is a warning,
  hence an error under ``sphinx-build -W``; its traceback is saved in ``<outdir>/reports/``, and
  ``<outdir>/notebook_execution.json`` records, per notebook, whether it ran and how long it took.
"""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from grokinterp.report.html import mathjax_source  # noqa: E402  (the repository first on the path)

project = "grokinterp"
author = "the grokinterp authors"
copyright = "2026, the grokinterp authors"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "notebooks/runs", "notebooks/README.md"]
html_theme = "pydata_sphinx_theme"
html_title = "grokinterp"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2, "show_nav_level": 2}
# top-level pages without sub-pages have nothing for the section navigation: no empty left column
html_sidebars = {"index": [], "getting-started": [], "concepts": [], "reliability": []}
html_static_path = ["_static"]
# plotly.min.js is written into _static at the end of the build (see setup)
html_js_files = ["plotly.min.js", "fit-figures.js"]
html_css_files = ["wrap-code.css"]

# --- notebooks: executed at build time in quick mode ------------------------------------------
os.environ.setdefault("GROKINTERP_QUICK", "1")
_OWN_OUT = "GROKINTERP_OUT" not in os.environ
if _OWN_OUT:
    os.environ["GROKINTERP_OUT"] = tempfile.mkdtemp(prefix="grokinterp-docs-runs-")
os.environ.setdefault("GROKINTERP_THREADS", "1")  # one thread: the build may share the machine
# the clock-vs-pizza authors' released models, read by the legacy-checkpoints how-to: shared/ beside the repository
os.environ.setdefault("GROKINTERP_FIXTURES", str(HERE.parent.parent / "shared" / "fixtures"))
nb_execution_mode = os.environ.get("GROKINTERP_NB_EXECUTION", "force")
nb_execution_timeout = int(os.environ.get("GROKINTERP_NB_TIMEOUT", "600"))
nb_execution_raise_on_error = False  # a failure is a warning (an error under -W) and a report file
nb_execution_show_tb = True
nb_output_stderr = "remove"  # library warnings printed while importing are not part of the story
nb_ipywidgets_js = {}  # no require.js / widget scripts from a CDN
# figures: use the HTML <div> (drawn by the site's plotly.js), not plotly's JSON mimetype
nb_mime_priority_overrides = [("html", "application/vnd.plotly.v1+json", None)]
myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath"]
# MathJax from the installed package, copied into _static at the end of the build (see setup)
MATHJAX_STATIC = "mathjax/tex-svg.js"
mathjax_path = MATHJAX_STATIC

# --- API reference -------------------------------------------------------------------------------
autosummary_generate = False
# types in the signatures, and in the headings of dataclass fields (``source: str``)
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# the notebooks' figures carry plotly's JSON (for Jupyter) next to the HTML <div> the site shows;
# the JSON part has no renderer here by design
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]


def _finish(app, exception):
    """Copy plotly.js and MathJax into _static, record notebook execution, drop the temporary runs."""
    if _OWN_OUT:
        shutil.rmtree(os.environ["GROKINTERP_OUT"], ignore_errors=True)
    if exception is not None or app.builder.format != "html":
        return
    from plotly.offline import get_plotlyjs

    static = Path(app.outdir) / "_static"
    static.mkdir(parents=True, exist_ok=True)
    (static / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
    mathjax = static / MATHJAX_STATIC
    mathjax.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mathjax_source(), mathjax)

    record = {}
    for docname, data in sorted(getattr(app.env, "nb_metadata", {}).items()):
        exec_data = data.get("exec_data")
        if exec_data:
            record[docname] = {
                "succeeded": exec_data.get("succeeded"),
                "runtime_s": exec_data.get("runtime"),
                "error": exec_data.get("error"),
            }
    (Path(app.outdir) / "notebook_execution.json").write_text(json.dumps(record, indent=1), encoding="utf-8")


def setup(app):
    app.connect("build-finished", _finish)
