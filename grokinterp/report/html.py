"""HTML pages that open offline: plotly.js from the installed package (inline once per page, or
one ``plotly.min.js`` per folder), no CDN or MathJax links; circuitsvis views from the package's
bundled JavaScript. Every value that reaches the page is escaped: text with ``html.escape``,
values inside scripts as JSON with ``<``, ``>`` and ``&`` written as ``\\u`` escapes."""

from __future__ import annotations

import html as _html
import json
import re
import uuid
from pathlib import Path
from typing import Iterable, Literal, Mapping

import circuitsvis as cv
from plotly.offline import get_plotlyjs

from ..errors import GrokinterpError
from ..safeio import atomic_write_text

__all__ = ["PLOTLY_FILE", "PlotlyJS", "circuitsvis_attention_html", "figure_html", "script_json", "write_page"]

PlotlyJS = Literal["inline", "directory"]
PLOTLY_FILE = "plotly.min.js"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; border-bottom: 1px solid #eee; text-align: left; }
th { background: #f6f6f6; } .swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; }
.figure { margin: 1em 0; } p.note { color: #555; max-width: 60em; }
"""


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
        config={"displaylogo": False},
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


def _plotly_tag(path: Path, plotlyjs: PlotlyJS) -> str:
    """The page's plotly.js: inline, or ``plotly.min.js`` written once next to the page (rewritten
    only when it differs from the installed plotly's) and referenced by a relative path."""
    js = get_plotlyjs()
    if plotlyjs == "inline":
        return f'<script type="text/javascript">{js}</script>'
    if plotlyjs != "directory":
        raise GrokinterpError(f"plotlyjs must be 'inline' or 'directory', got {plotlyjs!r}")
    target = path.parent / PLOTLY_FILE
    if not target.exists() or target.stat().st_size != len(js.encode("utf-8")) or target.read_text(encoding="utf-8") != js:
        atomic_write_text(target, js)
    return f'<script type="text/javascript" src="{PLOTLY_FILE}"></script>'


def write_page(path: str | Path, title: str, sections: Iterable[tuple[str, str]], figures: Mapping[str, object] | None = None,
               plotlyjs: PlotlyJS = "inline", intro: str = "") -> Path:
    """Write one HTML file: ``sections`` are (heading, html body) pairs (the bodies are HTML the
    caller built and escaped); ``figures`` (name → plotly figure) are appended each under its name;
    ``intro`` is plain text shown under the title. plotly.js is included once (see ``plotlyjs``)."""
    path = Path(path)
    parts = [f"<h2>{_html.escape(h)}</h2>\n{body}" for h, body in sections]
    for name, fig in (figures or {}).items():
        parts.append(f'<h2>{_html.escape(name)}</h2>\n<div class="figure" data-figure="{_html.escape(name)}">'
                     f"{figure_html(fig)}</div>")
    head = _plotly_tag(path, plotlyjs)
    note = f'<p class="note">{_html.escape(intro)}</p>\n' if intro else ""
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{_html.escape(title)}</title><style>{_STYLE}</style>{head}</head>\n"
        f"<body><h1>{_html.escape(title)}</h1>\n{note}" + "\n".join(parts) + "\n</body></html>\n"
    )
    return atomic_write_text(path, page)
