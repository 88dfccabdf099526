"""Reports that compare runs: analyze_runs, a sweep folder, the overlay and slider figures in a
browser, plotly.js once per folder, and escaping of every value that reaches the page."""

import json
import re

import pytest
import torch

import grokinterp as gi
from grokinterp.report import Comparison, Report, analyze, analyze_runs
from grokinterp.report.figures import report_html

from browser import dump_dom
from conftest import FAST_MLP, FAST_TASK, FAST_TRAIN


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A folder of two run folders (two init seeds), as a sweep writes them."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sweep")
    task = gi.ModularArithmetic(**FAST_TASK)
    cfg = gi.TrainConfig(**{**FAST_TRAIN, "checkpoint_every": 100, "epochs": 600, "stop_at_test_acc": None})
    for seed in (0, 1):
        gi.train(gi.HookedMLP(gi.MLPConfig(**{**FAST_MLP, "seed": seed})), task, cfg, out_dir=root / f"seed{seed}")
    return root


@pytest.fixture(scope="module")
def comparison(sweep):
    return analyze(sweep, progress=True)


def test_a_sweep_folder_gives_a_comparison(sweep, comparison):
    assert isinstance(comparison, Comparison)
    assert comparison.names == ["seed0", "seed1"] and comparison.source == str(sweep)
    for name in comparison.names:
        alone = analyze(sweep / name)
        assert comparison[name].metrics == alone.metrics
        assert comparison[name].key_frequencies == alone.key_frequencies
    table = comparison.table()
    assert list(table.index) == ["seed0", "seed1"]
    assert table.loc["seed1", "test accuracy"] == comparison["seed1"].metrics["test_acc"]
    # the same from paths and from reports, with names
    again = analyze_runs([comparison["seed0"], sweep / "seed1"], names=["a", "b"], progress=False)
    assert again.names == ["a", "b"] and again["a"] is comparison["seed0"]
    assert Comparison.from_json(comparison.to_json()).to_dict() == comparison.to_dict()
    with pytest.raises(gi.GrokinterpError, match="names"):
        analyze_runs([sweep / "seed0"], names=["x", "y"])
    with pytest.raises(gi.GrokinterpError, match="distinct"):
        Comparison([comparison["seed0"], comparison["seed1"]], ["x", "x"])


def test_overlay_puts_every_run_on_one_axis(comparison):
    figs = comparison.figures()
    curves = figs["training curves of every run"]
    test_acc = [t for t in curves.data if t.name.endswith("test acc")]
    assert {t.name.split(":")[0] for t in test_acc} == {"seed0", "seed1"}
    assert {t.xaxis for t in test_acc} == {"x"}  # one shared axis
    assert len({t.line.color for t in test_acc}) == 2  # a colour per run
    for t, name in zip(test_acc, ("seed0", "seed1")):
        assert list(t.y) == [r["test_acc"] for r in comparison[name].history]
    loss_axis = curves.layout.yaxis2
    assert loss_axis.type == "log" and loss_axis.tickformat == ".0e"
    assert "progress measures of every run" in figs and "spectra of every run" in figs


def test_progress_panels_have_titles_legends_and_markers(comparison):
    fig = comparison.figures()["progress measures of every run"]
    for axis in ("xaxis", "xaxis2", "xaxis3", "xaxis4"):
        assert fig.layout[axis].title.text == "epoch"
    legends = {t.legend for t in fig.data}
    assert legends == {"legend", "legend2", "legend3", "legend4"}
    assert all("markers" in t.mode for t in fig.data)  # a few checkpoints: each shown as a marker


def test_slider_steps_through_checkpoints(comparison):
    fig = comparison.figures()["embedding spectrum over training, every run"]
    epochs = sorted({r["epoch"] for n in comparison.names for r in comparison[n].progress})
    assert [f.name for f in fig.frames] == [str(e) for e in epochs]
    first = {t.name: list(t.y) for t in fig.frames[0].data}
    assert first["seed0"] == comparison["seed0"].progress[0]["embedding_spectrum"][1:]
    assert first != {t.name: list(t.y) for t in fig.frames[-1].data}


def _probe(path, script):
    """Append a script to a copy of the page that writes what it finds into <pre id="probe">."""
    page = path.read_text()
    probe = path.with_name("probe_" + path.name)
    probe.write_text(page.replace("</body>", f'<pre id="probe"></pre><script>{script}</script></body>'))
    dom = dump_dom(probe.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_two_run_page_draws_the_overlay_and_the_slider_moves(comparison, tmp_path):
    path = comparison.to_html(tmp_path / "two.html")
    text = path.read_text()
    assert text.count("<script type=\"text/javascript\">") >= 1 and not re.search(r"<script[^>]+src=", text)
    result = _probe(path, """
    window.addEventListener('load', async () => {
      const out = {};
      const figs = [...document.querySelectorAll('[data-figure]')];
      const curves = figs.find(d => d.dataset.figure === 'training curves of every run').querySelector('.js-plotly-plot');
      out.overlay = curves.data.filter(t => t.name.endsWith('test acc')).map(t => [t.name, t.xaxis || 'x', t.yaxis || 'y']);
      out.drawn = curves.querySelectorAll('.scatterlayer .trace').length;
      const slider = figs.find(d => d.dataset.figure === 'embedding spectrum over training, every run').querySelector('.js-plotly-plot');
      const frames = slider._transitionData._frames;
      const names = frames.map(f => f.name);
      // step to a frame, then wait until the plot shows its data (headless Chromium's virtual clock
      // can leave the promise of Plotly.animate pending after the frame is shown)
      const show = async (k) => {
        Plotly.animate(slider, [names[k]], {mode: 'immediate', frame: {duration: 0, redraw: true}, transition: {duration: 0}})
          .catch(() => {});
        const want = JSON.stringify(Array.from(frames[k].data[0].y));
        for (let i = 0; i < 200 && JSON.stringify(Array.from(slider.data[0].y)) !== want; i++) {
          await new Promise(resolve => setTimeout(resolve, 50));
        }
        return Array.from(slider.data[0].y);
      };
      out.first = await show(0);
      out.last = await show(names.length - 1);
      out.steps = slider.layout.sliders[0].steps.length;
      out.frames = names.length;
      document.getElementById('probe').textContent = JSON.stringify(out);
    });""")
    assert sorted(result["overlay"]) == [["seed0: test acc", "x", "y"], ["seed1: test acc", "x", "y"]]
    assert result["drawn"] >= 8  # train / test accuracy and loss of both runs drew
    assert result["steps"] == result["frames"] >= 2
    r0 = comparison["seed0"]
    assert result["first"] == pytest.approx(r0.progress[0]["embedding_spectrum"][1:])
    assert result["last"] == pytest.approx(r0.progress[-1]["embedding_spectrum"][1:])
    assert result["first"] != pytest.approx(result["last"])


def test_report_html_keeps_its_signature_and_compares(comparison, tmp_path):
    reports = [comparison["seed0"], comparison["seed1"]]
    path = report_html(reports, tmp_path / "demo.html", "base and ticket", ["base", "ticket"])
    html = path.read_text()
    for name in ("training curves of every run", "progress measures of every run", "base: logit 2D spectrum",
                 "ticket: W_L in the Fourier basis"):
        assert f'data-figure="{name}"' in html


def test_plotlyjs_once_per_folder(comparison, tmp_path):
    a = comparison["seed0"].to_html(tmp_path / "a.html", plotlyjs="directory")
    b = comparison.to_html(tmp_path / "b.html", plotlyjs="directory")
    js = tmp_path / "plotly.min.js"
    assert js.exists() and js.stat().st_size > 1_000_000
    for page in (a, b):
        text = page.read_text()
        assert '<script type="text/javascript" src="plotly.min.js"></script>' in text
        assert len(text) < js.stat().st_size  # the library is not inlined
    inline = comparison["seed0"].to_html(tmp_path / "c.html").read_text()
    assert len(inline) > js.stat().st_size
    dom = dump_dom(a.as_uri())
    assert dom.count('class="main-svg"') >= 2 * len(comparison["seed0"].figures())
    with pytest.raises(gi.GrokinterpError, match="plotlyjs"):
        comparison["seed0"].to_html(tmp_path / "d.html", plotlyjs="cdn")


PAYLOAD = '</script><script>document.title="pwned"</script>'


def test_values_reaching_html_are_escaped(tmp_path):
    tf = gi.make_transformer(gi.TransformerConfig(p=11, d_model=16, d_head=8, n_heads=2, d_mlp=16, seed=0))
    report = analyze(tf, gi.ModularArithmetic(11))
    d = report.to_dict()
    d["attention"]["example"]["tokens"] = [PAYLOAD, "<b>b</b>", "="]
    d["source"] = PAYLOAD
    d["model"]["kind"] = "<img src=x onerror=alert(1)>"
    evil = Report.from_json(json.dumps(d))
    path = evil.to_html(tmp_path / "evil.html", title=PAYLOAD)
    html = path.read_text()
    assert PAYLOAD not in html and "<img src=x" not in html and "<b>b</b>" not in html
    dom = dump_dom(path.as_uri())
    assert "<title>pwned</title>" not in dom
    assert re.search(r'id="circuits-vis-[^"]+"[^>]*>\s*<', dom), "the attention view still rendered"
    assert "&lt;/script&gt;&lt;script&gt;" in dom  # shown as text, in the title and the table


def test_analyze_command_on_a_sweep_folder(sweep, tmp_path, capsys):
    from grokinterp.cli import main

    assert main(["analyze", str(sweep), "--no-progress", "--html", str(tmp_path / "s.html"), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "2 runs" in out and "seed0" in out and "seed1" in out
    again = Comparison.from_json(tmp_path / "s.json")
    assert again.names == ["seed0", "seed1"]
    assert 'data-figure="training curves of every run"' in (tmp_path / "s.html").read_text()
