"""Self-contained HTML pages that open offline: plotly.js inlined once from the installed package,
no CDN or MathJax links; circuitsvis views from the package's bundled JavaScript."""

from __future__ import annotations

import html as _html
import re
from pathlib import Path
from typing import Iterable, Mapping

from ..safeio import atomic_write_text

__all__ = ["circuitsvis_attention_html", "figure_html", "write_page"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; border-bottom: 1px solid #eee; text-align: left; }
.figure { margin: 1em 0; }
"""


def figure_html(fig, div_id: str | None = None, height: str = "420px") -> str:
    """A plotly figure as a ``<div>`` plus its drawing script, without plotly.js or MathJax."""
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        div_id=div_id,
        default_height=height,
        config={"displaylogo": False},
    )


def circuitsvis_attention_html(tokens: list[str], pattern) -> str:
    """circuitsvis attention-pattern view (heads, query, key) rendered from the bundled JavaScript."""
    import circuitsvis as cv

    src = cv.attention.attention_patterns(tokens=tokens, attention=pattern).local_src
    # circuitsvis writes its mount point as a self-closing <div/>, which HTML parses as an open div:
    # everything after it would become its children and be wiped when the view renders. Close it.
    return re.sub(r'(<div id="circuits-vis-[^"]+"[^>]*?)\s*/>', r"\1></div>", src, count=1)


def write_page(path: str | Path, title: str, sections: Iterable[tuple[str, str]], figures: Mapping[str, object] | None = None) -> Path:
    """Write one HTML file: ``sections`` are (heading, html body) pairs; ``figures`` (name → plotly
    figure) are appended each under its name. plotly.js is included once, inline."""
    from plotly.offline import get_plotlyjs

    parts = [f"<h2>{_html.escape(h)}</h2>\n{body}" for h, body in sections]
    for name, fig in (figures or {}).items():
        parts.append(f'<h2>{_html.escape(name)}</h2>\n<div class="figure" data-figure="{_html.escape(name)}">'
                     f"{figure_html(fig)}</div>")
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{_html.escape(title)}</title><style>{_STYLE}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>\n'
        f"<body><h1>{_html.escape(title)}</h1>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    return atomic_write_text(path, page)
