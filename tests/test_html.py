import html
import re

import torch

import grokinterp as gi
from grokinterp.report.html import (
    MATHJAX_FILE,
    PLOTLY_FILE,
    circuitsvis_attention_html,
    math_html,
    mathjax_source,
    write_page,
)
from grokinterp.report.plotting import training_curves

from browser import dump_dom


def _history():
    return [{"epoch": e, "train_acc": min(1, e / 100), "test_acc": min(1, max(0, (e - 300) / 200)),
             "train_loss": 1 / (1 + e), "test_loss": 2 / (1 + e)} for e in range(0, 1000, 50)]


def test_training_curves_mark_grokking_times():
    times = gi.grokking_times(_history())
    fig = training_curves(_history(), times)
    names = {t.name for t in fig.data}
    assert names == {"train acc", "test acc", "train loss", "test loss"}
    marked = {s.x0 for s in fig.layout.shapes}
    assert marked == {times.t_mem, times.t_gen}


def test_page_is_self_contained_and_draws_offline(tmp_path):
    hist = _history()
    pattern = torch.softmax(torch.randn(2, 3, 3), -1)
    path = write_page(
        tmp_path / "page.html", "test page",
        [("attention", circuitsvis_attention_html(["a", "b", "="], pattern))],
        {"curves": training_curves(hist, gi.grokking_times(hist)), "again": training_curves(hist)},
    )
    text = path.read_text()
    assert not re.search(r"<script[^>]+src=", text), "no external script sources"
    assert "MathJax.js?config" not in text and not re.search(r"""src=["']?(https?:)?//""", text)
    assert text.count("Plotly.newPlot(") == 2
    dom = dump_dom(path.as_uri())
    assert dom.count('class="main-svg"') >= 4  # plotly draws two svg layers per figure
    assert re.search(r'id="circuits-vis-[^"]+"[^>]*>\s*<', dom), "circuitsvis rendered into its div"


FORMULAS = math_html(r"\tau_{\mathrm{grok}} = t_{\mathrm{gen}} / t_{\mathrm{mem}}") + math_html(
    r"H = -\sum_k q_k \ln q_k, \qquad q_k = \frac{P_k}{\sum_j P_j}", display=True)


def test_formulas_render_offline_inline_and_beside_the_page(tmp_path):
    curves = {"curves": training_curves(_history())}
    inline = write_page(tmp_path / "inline" / "page.html", "maths", [("formulas", f"<p>{FORMULAS}</p>")], curves)
    text = inline.read_text()
    assert not re.search(r"<script[^>]+src=", text), "MathJax is inlined like plotly.js"
    assert [p.name for p in inline.parent.iterdir()] == ["page.html"]
    assert len(text) > mathjax_source().stat().st_size + 4_000_000  # MathJax (about 2 MB) and plotly.js

    folder = tmp_path / "directory"
    page = write_page(folder / "a.html", "maths", [("formulas", FORMULAS)], curves, plotlyjs="directory")
    assert sorted(p.name for p in folder.iterdir()) == sorted(["a.html", PLOTLY_FILE, MATHJAX_FILE])
    assert (folder / MATHJAX_FILE).read_bytes() == mathjax_source().read_bytes()
    assert f'<script type="text/javascript" src="{MATHJAX_FILE}"></script>' in page.read_text()
    assert len(page.read_text()) < 200_000
    written = (folder / MATHJAX_FILE).stat().st_mtime_ns
    write_page(folder / "b.html", "again", [("formulas", FORMULAS)], plotlyjs="directory")
    assert (folder / MATHJAX_FILE).stat().st_mtime_ns == written, "one MathJax per folder, written once"

    for path in (inline, page):
        dom = dump_dom(path.as_uri())  # no host but loopback is reachable
        assert dom.count("<mjx-container") == 2 and dom.count('data-typeset=""') == 2, path
        assert len(re.findall(r'<mjx-container[^>]*display="true"', dom)) == 1  # the block formula
        drawn = re.findall(r"<mjx-container.*?</mjx-container>", dom, re.S)
        assert all("<svg" in d and 'data-mml-node="merror"' not in d for d in drawn), "drawn as SVG, without TeX errors"
        assert dom.count('class="main-svg"') >= 2, "plotly still draws"


def test_a_page_without_formulas_carries_no_mathjax(tmp_path):
    page = write_page(tmp_path / "p.html", "no maths", [("table", "<p>tau_grok = t_gen / t_mem</p>")], plotlyjs="directory")
    assert "MathJax" not in page.read_text() and not (tmp_path / MATHJAX_FILE).exists()


def test_text_around_the_formulas_is_never_typeset(tmp_path):
    """Only the page's own formulas are typeset: TeX in a run name, a path or a figure label stays the
    characters it holds (TeX can make links, and \\href{javascript:...} would be one)."""
    evil = [r"\(\href{javascript:alert(1)}{x}\)", r"$\href{javascript:alert(2)}{y}$", r"$$\href{javascript:alert(3)}{z}$$",
            r"\[\href{javascript:alert(4)}{w}\]"]
    fig = training_curves(_history())
    fig.update_layout(title=evil[1])
    fig.data[0].name = evil[1]
    body = "".join(f"<p>{html.escape(e)}</p>" for e in evil) + f"<p>{math_html('x^2')}</p>"
    page = write_page(tmp_path / "evil.html", evil[0], [("text", body)], {"figure": fig})
    dom = dump_dom(page.as_uri())
    assert dom.count("<mjx-container") == 1, "only the page's formula"
    assert not re.search(r"href=.?javascript", dom, re.I)
    for e in evil:
        assert html.escape(e, quote=False) in dom, e
    assert dom.count('class="main-svg"') >= 2
