"""The tickets-paper reproduction: the quick preset end to end (every claim has a row), restarts
that train only what is unfinished, the two Table 1 protocols, the aggregation and the CLI."""

import json
import math
import re
from pathlib import Path

import pytest

import grokinterp as gi
from grokinterp.cli import build_parser, main
from grokinterp.errors import GrokinterpError
from grokinterp.reproduce import CLAIMS, EXPERIMENTS, preset, reproduce_tickets_paper, select, summarise
from grokinterp.reproduce.claims import STATUSES, format_summary
from grokinterp.reproduce.experiments import mlp_plan
from grokinterp.runs.layout import REPRO_MANIFEST, REPRO_REPORT_HTML, REPRO_REPORT_JSON, REPRO_REPORT_MD, REPRO_RUNS
from grokinterp.sweeps import InlineExecutor
from grokinterp.tickets import largest_generalising


def _mtimes(folder: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _manifest(out: Path) -> dict:
    rows = json.loads((out / REPRO_MANIFEST).read_text())["runs"]
    return {(r["experiment"], r["role"], r["seed"]): r for r in rows}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro") / "quick"
    return reproduce_tickets_paper(out, quick=True, executor="inline", progress=False)


def test_quick_run_reports_every_claim(quick_run):
    report = json.loads((quick_run.out / REPRO_REPORT_JSON).read_text())
    assert [c["id"] for c in report["claims"]] == [c.id for c in CLAIMS]
    assert all(c["status"] in STATUSES and c["status"] != "not evaluated" for c in report["claims"])
    assert report["quick"] and "QUICK" in report["title"] and report["note"]
    assert [e["name"] for e in report["experiments"]] == list(EXPERIMENTS)
    assert all(e["quantities"] and not e["errors"] for e in report["experiments"])
    assert quick_run.failed == 0 and quick_run.trained > 0
    markdown = (quick_run.out / REPRO_REPORT_MD).read_text()
    assert "QUICK" in markdown and all(f"**{c.id}**" in markdown for c in CLAIMS)
    html = (quick_run.out / REPRO_REPORT_HTML).read_text()
    assert "Verdicts" in html and 'data-figure="Table 1' in html
    assert not re.search(r"<script[^>]+src=", html), "the page opens offline"
    # every run folder is named by its run's spec key
    for folder in (quick_run.out / REPRO_RUNS).iterdir():
        assert gi.load_run(folder).key == folder.name


def test_rerun_trains_nothing(quick_run):
    before = _mtimes(quick_run.out / REPRO_RUNS)
    again = reproduce_tickets_paper(quick_run.out, quick=True, executor="inline", progress=False)
    assert again.trained == 0 and again.reused == quick_run.trained + quick_run.reused
    assert _mtimes(quick_run.out / REPRO_RUNS) == before
    assert [c["detail"] for c in again.verdicts] == [c["detail"] for c in quick_run.verdicts]


def test_subset_then_more_trains_only_the_new_runs_and_aggregates_by_hand(tmp_path):
    out = tmp_path / "repro"
    first = reproduce_tickets_paper(out, quick=True, seeds=2, only="fig1", executor="inline", progress=False)
    assert (first.trained, first.reused) == (4, 0)  # base and ticket, two seeds
    before = _mtimes(out / REPRO_RUNS)
    second = reproduce_tickets_paper(out, quick=True, seeds=2, only=["fig1", "fig5"], executor="inline", progress=False)
    assert (second.trained, second.reused) == (4, 4)  # the L1 and L2 controls are new; base and ticket are shared
    after = _mtimes(out / REPRO_RUNS)
    assert all(after[f] == t for f, t in before.items())
    # mean ± std of the base's t_gen, by hand from the run folders
    slots = _manifest(out)
    t_gen = []
    for seed in (0, 1):
        history = gi.load_run(out / slots[("fig1", "base", seed)]["folder"]).history
        t_gen.append(next((r["epoch"] for r in history if r["test_acc"] > 0.95), None))
    fig1 = next(e for e in second.report["experiments"] if e["name"] == "fig1")
    summary = next(q for q in fig1["quantities"] if q["name"] == "t_gen/base")["summary"]
    values = [t for t in t_gen if t is not None]
    assert summary["values"] == t_gen and summary["n"] == len(values)
    if len(values) == 2:
        mean = (values[0] + values[1]) / 2
        assert summary["mean"] == pytest.approx(mean)
        assert summary["std"] == pytest.approx(math.sqrt(((values[0] - mean) ** 2 + (values[1] - mean) ** 2) / 1))
    statuses = {c["id"]: c["status"] for c in second.verdicts}
    assert statuses["table1.faithful.ep_frozen"] == "not evaluated"  # not selected, still a row
    assert statuses["fig5.ticket_vs_norm_matched"] in ("reproduced", "not reproduced")


class _StopAfter:
    """An executor that runs items in this process and is interrupted (Ctrl-C) after ``n`` of them."""

    name, workers = "stop-after", 1

    def __init__(self, n: int):
        self.n = n

    def run(self, fn, items, started, finished):
        for i, item in enumerate(items):
            if self.n == 0:
                raise KeyboardInterrupt
            started(i)
            finished(i, fn(item), None)
            self.n -= 1


def test_interrupted_reproduction_continues_where_it_stopped(tmp_path):
    pr = preset("quick").replace(ops=("sub", "mul", "div"))
    out = tmp_path / "repro"
    with pytest.raises(KeyboardInterrupt):
        reproduce_tickets_paper(out, preset=pr, only="fig2c", executor=_StopAfter(2), progress=False)
    finished = [p for p in (out / REPRO_RUNS).iterdir()] if (out / REPRO_RUNS).exists() else []
    assert len(finished) == 2
    before = _mtimes(out / REPRO_RUNS)
    result = reproduce_tickets_paper(out, preset=pr, only="fig2c", executor=InlineExecutor(), progress=False)
    assert (result.trained, result.reused) == (1 + 3, 2)  # the third base and the three tickets
    after = _mtimes(out / REPRO_RUNS)
    assert all(after[f] == t for f, t in before.items())
    statuses = {c["id"]: c["status"] for c in result.verdicts}
    assert all(statuses[f"fig2c.{op}"] != "not evaluated" for op in pr.ops)
    assert statuses["fig2c.x3+xy"] == "not evaluated"  # an op the preset leaves out keeps its row


def test_table1_protocols(tmp_path):
    out = tmp_path / "repro"
    result = reproduce_tickets_paper(out, quick=True, seeds=2, only="table1", executor="inline", progress=False)
    assert result.failed == 0
    slots = _manifest(out)
    memorised = {s: slots[("table1", "memorised", s)]["key"] for s in (0, 1)}
    for row in ("wd", "ep_frozen", "ep_wd"):
        faithful = gi.load_run(out / slots[("table1", f"faithful/{row}", 1)]["folder"])
        corrected = gi.load_run(out / slots[("table1", f"corrected/{row}", 1)]["folder"])
        assert faithful.config["parent_key"] == memorised[0] and faithful.task.seed == 1
        assert corrected.config["parent_key"] == memorised[1] and corrected.task.seed == 1
        # seed 0: both protocols are one run, trained once
        assert slots[("table1", f"faithful/{row}", 0)]["key"] == slots[("table1", f"corrected/{row}", 0)]["key"]
    ep = gi.load_run(out / slots[("table1", "faithful/ep_frozen", 1)]["folder"]).config["edge_popup"]
    assert (ep["score_lr"], ep["score_weight_decay"], ep["score_init"], ep["weights"], ep["seed"]) == (
        0.01, 1.0, "kaiming_uniform", "frozen", 1)
    assert result.trained == 2 + 3 * 3


def test_summarise_by_hand():
    s = summarise([420, 460, None, 500])
    assert (s.mean, s.n, s.missing) == (460.0, 3, 1)
    assert s.std == pytest.approx(math.sqrt((40**2 + 0 + 40**2) / 2))
    assert format_summary(s, "never") == "460 ± 40 (n=3, 1 never)"
    one = summarise([0.5])
    assert (one.mean, one.std, one.n) == (0.5, None, 1)
    assert summarise([None, None]).mean is None


def test_claim_rules_on_made_up_numbers():
    claims = {c.id: c for c in CLAIMS}
    ctx = {"read_epochs": [600, 1000, 1400, 2000]}
    close = [{f"faithful/ep_frozen/acc@{e}": v + d for e, v in zip(ctx["read_epochs"], (0.68, 0.80, 0.84, 0.92))}
             for d in (-0.02, 0.03)]
    assert claims["table1.faithful.ep_frozen"].verdict(close, ctx).status == "reproduced"
    far = [{**m, "faithful/ep_frozen/acc@2000": 0.80} for m in close]
    verdict = claims["table1.faithful.ep_frozen"].verdict(far, ctx)
    assert verdict.status == "not reproduced" and "-0.12" in verdict.detail
    earlier = claims["fig5.ticket_vs_norm_matched"]
    seeds = [{"t_gen/ticket": 400, "t_gen/dense_l1": 900, "t_gen/dense_l2": None},
             {"t_gen/ticket": 500, "t_gen/dense_l1": 800, "t_gen/dense_l2": 700}]
    assert earlier.verdict(seeds, {}).status == "reproduced"
    seeds[1]["t_gen/dense_l2"] = 450
    v = earlier.verdict(seeds, {})
    assert v.status == "not reproduced" and "earlier in 1 of 2 seeds" in v.detail


def test_jaccard_claims_skip_the_first_interval_and_follow_the_base():
    """Planted trajectories: the first interval's distance is ignored; the peak must sit in the
    interval holding the base's t_gen (rows (e - 2000, e]) or next to it."""
    claims = {c.id: c for c in CLAIMS}
    ctx = {"jaccard_every": 2000}
    # t_gen 12360 lies in the row ending at 14000: peaks at 12000, 14000, 16000 are within one row
    seeds = [{"peak_epoch": 2000, "peak_epoch_later": peak, "t_gen/base": 12360} for peak in (12000, 14000, 16000)]
    v = claims["fig7.jaccard_at_grokking"].verdict(seeds, ctx)
    assert v.status == "reproduced" and "in 3 of 3 seeds" in v.detail
    v = claims["fig7.jaccard_peak"].verdict(seeds, ctx)
    assert v.status == "not reproduced" and "peak epochs per seed [12000, 14000, 16000]" in v.detail
    assert "with the first interval the peaks are [2000, 2000, 2000]" in v.detail
    seeds[0]["peak_epoch_later"] = 10000  # two rows before the one holding t_gen
    assert claims["fig7.jaccard_at_grokking"].verdict(seeds, ctx).status == "not reproduced"
    seeds[0]["t_gen/base"] = None  # a base that never generalised has no climb to follow
    seeds[0]["peak_epoch_later"] = 12000
    assert claims["fig7.jaccard_at_grokking"].verdict(seeds, ctx).status == "not reproduced"
    assert claims["fig7.jaccard_peak"].verdict([{"peak_epoch_later": None}], ctx).status == "not evaluated"
    window = [{"peak_epoch": 2000, "peak_epoch_later": e, "t_gen/base": 17000} for e in (16000, 18000, 20000)]
    assert claims["fig7.jaccard_peak"].verdict(window, ctx).status == "reproduced"


def test_table1_memorised_run_draws_the_embedding_kaiming_normal():
    """The official network's embedding is Kaiming-normal (std sqrt(2 / p)), the other matrices
    normal(0, 1 / fan_in); the memorised run's plan builds exactly that init."""
    pr = preset("full")
    model = mlp_plan(pr, 0, pr.table1.memorise, frac_train=pr.table1.frac_train,
                     init_scales=pr.table1.init_scales).build_model()
    w = {n: p.detach() for n, p in model.named_parameters()}
    assert float(w["W_E"].std()) == pytest.approx(math.sqrt(2 / pr.p), rel=0.02)
    assert float(w["W_in"].std()) == pytest.approx(1 / math.sqrt(pr.d_embed), rel=0.02)
    default = mlp_plan(pr, 0, pr.table1.memorise).build_model()
    assert float(default.W_E.detach().std()) == pytest.approx(1 / math.sqrt(pr.p), rel=0.02)


def test_largest_generalising_uses_the_threshold():
    def history(acc):
        return [{"epoch": 0, "train_acc": 0.0, "test_acc": 0.0}, {"epoch": 10, "train_acc": 1.0, "test_acc": acc}]

    points = [(0.6, history(0.99)), (0.7, history(0.96)), (0.8, history(0.9)), (0.9, history(0.2))]
    assert largest_generalising(points, 0.95) == 0.7
    assert largest_generalising(points, 0.85) == 0.8
    assert largest_generalising(points, 0.995) is None
    with pytest.raises(GrokinterpError, match="threshold"):
        largest_generalising(points, 1.5)


def test_select_refuses_unknown_names():
    assert [e.name for e in select("table1,fig5")] == ["fig5", "table1"]
    with pytest.raises(GrokinterpError, match="nope"):
        select("fig1,nope")


def test_cli_unknown_only_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "repro"
    assert main(["reproduce", "tickets-paper", "--quick", "--only", "table1,nope", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("grokinterp reproduce: error:") and "nope" in err
    assert not out.exists()


def test_cli_reproduce_quick_subset(tmp_path, capsys):
    out = tmp_path / "repro"
    assert main(["reproduce", "tickets-paper", "--quick", "--only", "fig7", "--executor", "inline", "--no-progress",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "QUICK" in printed and "fig7.jaccard_peak:" in printed and "1 trained" in printed
    assert (out / REPRO_REPORT_MD).is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    assert main(["reproduce", "tickets-paper", "--quick", "--out", str(tmp_path / "other")]) == 2


def test_cli_critical_threshold_option():
    args = build_parser().parse_args(["critical", "--run", "r", "--out", "o", "--threshold", "0.9"])
    assert args.threshold == 0.9
    args = build_parser().parse_args(["reproduce", "tickets-paper", "--critical-threshold", "0.8"])
    assert args.critical_threshold == 0.8
