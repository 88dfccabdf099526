"""HTML pages that open offline: plotly.js from the installed package (inline once per page, or
one ``plotly.min.js`` per folder), formulas drawn by MathJax from the installed
``django-static-mathjax`` package (its single-file ``tex-svg.js`` build, the same two ways), no CDN
links; circuitsvis views from the package's bundled JavaScript. Every value that reaches the page is
escaped: text with ``html.escape``, values inside scripts as JSON with ``<``, ``>`` and ``&`` written
as ``\\u`` escapes. MathJax typesets only the formulas the page itself marks (:func:`math_html`),
never the text around them, and plotly figures do not typeset their text, so a run name or a path
is shown as the characters it holds."""

from __future__ import annotations

import html as _html
import json
import re
import uuid
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Literal, Mapping

import circuitsvis as cv
from plotly.offline import get_plotlyjs

from ..errors import GrokinterpError
from ..safeio import atomic_write_text

__all__ = [
    "MATHJAX_FILE",
    "PLOTLY_FILE",
    "PlotlyJS",
    "circuitsvis_attention_html",
    "figure_html",
    "math_html",
    "mathjax_js",
    "mathjax_source",
    "script_json",
    "write_page",
]

PlotlyJS = Literal["inline", "directory"]
PLOTLY_FILE = "plotly.min.js"
#: MathJax's single-file TeX-to-SVG build (TeX input, SVG output with its fonts, and the menu in one script)
MATHJAX_FILE = "mathjax-tex-svg.js"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; border-bottom: 1px solid #eee; text-align: left; }
th { background: #f6f6f6; } .swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; }
.figure { margin: 1em 0; } p.note { color: #555; max-width: 60em; }
table.definitions td { vertical-align: top; padding: 6px 10px; } table.definitions td:first-child { white-space: nowrap; }
table.definitions .gloss { color: #555; font-size: 0.9em; margin-top: 2px; max-width: 50em; }
"""

# MathJax is told not to scan the page (startup.typeset: false); grokinterpTypeset() draws each
# element of class gi-math with a data-tex attribute: the formulas the page put there itself, nothing
# else. The page calls it right after its sections, before the figures below them draw (so that no
# figure moves once drawn), and MathJax's pageReady again for any formula not drawn by then.
_MATHJAX_CONFIG = """window.grokinterpTypeset = function () {
  document.querySelectorAll(".gi-math[data-tex]:not([data-typeset])").forEach(function (el) {
    var out = MathJax.tex2svg(el.getAttribute("data-tex"), {display: el.tagName === "DIV"});
    el.textContent = "";
    el.appendChild(out);
    el.setAttribute("data-typeset", "");
  });
  MathJax.startup.document.updateDocument();
};
window.MathJax = {
  startup: {
    typeset: false,
    pageReady: function () {
      return MathJax.startup.defaultPageReady().then(window.grokinterpTypeset);
    }
  },
  svg: {fontCache: "local"}
};"""
_TYPESET_NOW = ('<script type="text/javascript">if (window.MathJax && MathJax.tex2svg) { window.grokinterpTypeset(); }'
                "</script>")


def script_json(value) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element (no ``</script>`` can close it)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def figure_html(fig, div_id: str | None = None, height: str = "420px") -> str:
    """A plotly figure as a ``<div>`` plus its drawing script, without plotly.js or MathJax (plotly
    writes its JSON with ``<`` / ``>`` escaped)."""
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        div_id=div_id,
        default_height=height,
        # a "$...$" string in a figure (a run name, say) is shown as written, never typeset
        config={"displaylogo": False, "typesetMath": False},
    )


def circuitsvis_attention_html(tokens: list[str], pattern) -> str:
    """circuitsvis attention-pattern view (heads, query, key) rendered from the bundled JavaScript.

    circuitsvis writes the tokens into its script unescaped, so a token holding ``</script>`` would
    end the script and run what follows. The view is rendered with placeholder tokens, and each
    placeholder is then replaced by the token's script-safe JSON string."""
    tokens = [str(t) for t in tokens]
    marks = [f"grokinterp-token-{uuid.uuid4().hex}" for _ in tokens]
    src = cv.attention.attention_patterns(tokens=marks, attention=pattern).local_src
    for mark, token in zip(marks, tokens):
        if src.count(f'"{mark}"') != 1:
            raise GrokinterpError("circuitsvis wrote the attention tokens in an unexpected form; cannot escape them")
        src = src.replace(f'"{mark}"', script_json(token))
    # circuitsvis writes its mount point as a self-closing <div/>, which HTML parses as an open div:
    # everything after it would become its children and be wiped when the view renders. Close it.
    return re.sub(r'(<div id="circuits-vis-[^"]+"[^>]*?)\s*/>', r"\1></div>", src, count=1)


def mathjax_source() -> Path:
    """The installed MathJax single-file build (``es5/tex-svg.js`` of the ``django-static-mathjax``
    package, MathJax 3, Apache-2.0); the docs site copies the same file."""
    path = Path(str(resources.files("mathjax"))) / "static" / "mathjax" / "es5" / "tex-svg.js"
    if not path.is_file():
        raise GrokinterpError(f"MathJax's tex-svg.js is not where the django-static-mathjax package puts it ({path}); "
                              "reinstall it: pip install django-static-mathjax")
    return path


@lru_cache(maxsize=1)
def mathjax_js() -> str:
    """The text of :func:`mathjax_source` (about 2 MB)."""
    return mathjax_source().read_text(encoding="utf-8")


def math_html(tex: str, display: bool = False) -> str:
    """A formula for a page of :func:`write_page`: an element holding ``tex`` (escaped into an
    attribute) that MathJax draws when the page loads; until then, or without JavaScript, it shows
    the TeX itself. ``display``: a centred block instead of inline."""
    tag = "div" if display else "span"
    escaped = _html.escape(tex, quote=True)
    return f'<{tag} class="gi-math" data-tex="{escaped}">{escaped}</{tag}>'


def _write_once(target: Path, js: str) -> None:
    """Write ``js`` to ``target`` unless the file already holds exactly it."""
    if not target.exists() or target.stat().st_size != len(js.encode("utf-8")) or target.read_text(encoding="utf-8") != js:
        atomic_write_text(target, js)


def _script_tag(path: Path, plotlyjs: PlotlyJS, js: str, file_name: str) -> str:
    """A library's script: inline, or ``file_name`` written once next to the page (rewritten only
    when it differs from the installed copy) and referenced by a relative path."""
    if plotlyjs == "inline":
        return f'<script type="text/javascript">{js}</script>'
    if plotlyjs != "directory":
        raise GrokinterpError(f"plotlyjs must be 'inline' or 'directory', got {plotlyjs!r}")
    _write_once(path.parent / file_name, js)
    return f'<script type="text/javascript" src="{file_name}"></script>'


def _plotly_tag(path: Path, plotlyjs: PlotlyJS) -> str:
    """The page's plotly.js (see :func:`_script_tag`)."""
    return _script_tag(path, plotlyjs, get_plotlyjs(), PLOTLY_FILE)


def _mathjax_tag(path: Path, plotlyjs: PlotlyJS) -> str:
    """The page's MathJax configuration and MathJax itself, inline or as ``MATHJAX_FILE`` beside the
    page (the same choice as plotly.js)."""
    config = f'<script type="text/javascript">{_MATHJAX_CONFIG}</script>'
    return config + _script_tag(path, plotlyjs, mathjax_js(), MATHJAX_FILE)


def write_page(path: str | Path, title: str, sections: Iterable[tuple[str, str]], figures: Mapping[str, object] | None = None,
               plotlyjs: PlotlyJS = "inline", intro: str = "") -> Path:
    """Write one HTML file: ``sections`` are (heading, html body) pairs (the bodies are HTML the
    caller built and escaped; formulas in them come from :func:`math_html`); ``figures`` (name →
    plotly figure) are appended each under its name; ``intro`` is plain text shown under the title.
    plotly.js is included once (see ``plotlyjs``), and MathJax the same way when a section holds a
    formula."""
    path = Path(path)
    sections = list(sections)
    parts = [f"<h2>{_html.escape(h)}</h2>\n{body}" for h, body in sections]
    has_math = any('class="gi-math" data-tex="' in body for _, body in sections)
    if has_math:
        parts.append(_TYPESET_NOW)
    for name, fig in (figures or {}).items():
        parts.append(f'<h2>{_html.escape(name)}</h2>\n<div class="figure" data-figure="{_html.escape(name)}">'
                     f"{figure_html(fig)}</div>")
    head = _plotly_tag(path, plotlyjs) + (_mathjax_tag(path, plotlyjs) if has_math else "")
    note = f'<p class="note">{_html.escape(intro)}</p>\n' if intro else ""
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{_html.escape(title)}</title><style>{_STYLE}</style>{head}</head>\n"
        f"<body><h1>{_html.escape(title)}</h1>\n{note}" + "\n".join(parts) + "\n</body></html>\n"
    )
    return atomic_write_text(path, page)
