import re

import torch

import grokinterp as gi
from grokinterp.report.html import circuitsvis_attention_html, write_page
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
