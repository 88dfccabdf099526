"""The reproduction's report: for each experiment our numbers as ``mean ± std`` over seeds with the
paper's beside them, and one verdict per claim with its rule (:mod:`grokinterp.reproduce.claims`).

:func:`build_report` computes it as plain JSON-able data; :func:`write_report` writes it as
``report.json``, ``report.md`` (readable as text) and ``report.html`` (the same tables and the
figures of :mod:`grokinterp.reproduce.plots`, offline). Reports of the quick preset say in their
title and first line that they check the machinery, not the paper.
"""

from __future__ import annotations

import html as _html
from pathlib import Path
from typing import Mapping, Sequence

from ..report.html import write_page
from ..report.report import clean, dump_json
from ..runs.layout import REPRO_REPORT_HTML, REPRO_REPORT_JSON, REPRO_REPORT_MD
from ..safeio import atomic_write_text
from .claims import CLAIMS, format_summary, summarise
from .experiments import Experiment, claim_context
from .plots import report_figures
from .presets import PAPER_SETTINGS, TicketsPaperPreset

__all__ = ["AGGREGATION_RULE", "QUICK_NOTE", "build_report", "render_markdown", "write_report"]

AGGREGATION_RULE = ("mean ± std over seeds: the mean of the seeds with a value and the sample standard deviation "
                    "sqrt(sum (x - mean)^2 / (n - 1)); n counts those seeds, and seeds without a value (a time never "
                    "reached within the budget) are counted apart")
QUICK_NOTE = ("QUICK preset: small p and short runs that check the machinery end to end; its verdicts do not test "
              "the paper's claims (run without --quick for that)")


def _is_scalar(v) -> bool:
    return v is None or isinstance(v, (bool, int, float))


def _never(name: str) -> str:
    return "never reached" if name.startswith(("t_gen", "t_mem", "tau", "best_k", "critical")) else "missing"


def _experiment_section(exp: Experiment, pr: TicketsPaperPreset, seeds: Sequence[int], done: Sequence[tuple[int, dict]],
                        failures: Mapping) -> dict:
    names: list[str] = []
    for _, m in done:
        names += [k for k, v in m.items() if _is_scalar(v) and k not in names]
    paper = exp.paper(pr)
    quantities = []
    for name in names:
        s = summarise([m.get(name) for _, m in done])
        quantities.append({"name": name, "summary": s.to_dict(), "ours": format_summary(s, _never(name)),
                           "paper": paper.get(name)})
    series = {}
    for seed, m in done:
        for k, v in m.items():
            if not _is_scalar(v):
                series.setdefault(k, {})[str(seed)] = v
    return {
        "name": exp.name, "title": exp.title, "figures": exp.figures,
        "seeds_done": [s for s, _ in done],
        "errors": [f"seed {s}: {failures[(exp.name, s)]}" for s in seeds if (exp.name, s) in failures],
        "quantities": quantities, "series": series,
    }


def build_report(pr: TicketsPaperPreset, experiments: Sequence[Experiment], seeds: Sequence[int],
                 measures: Mapping[str, Sequence[tuple[int, dict]]], failures: Mapping, counts: Mapping) -> dict:
    """The report as JSON-able data (see the module docstring). Every claim has a row; claims of
    experiments that were not selected, or whose runs failed in some seed, are ``not evaluated``."""
    selected = {e.name for e in experiments}
    context = claim_context(pr)
    claims = []
    for claim in CLAIMS:
        done = [m for _, m in measures.get(claim.experiment, [])]
        failed = [s for s in seeds if (claim.experiment, s) in failures]
        if claim.experiment not in selected:
            status, detail = "not evaluated", "experiment not selected (--only)"
        else:
            v = claim.verdict(done, context)
            status, detail = v.status, v.detail
            if failed:
                status = "not evaluated"
                detail = f"runs of seeds {failed} failed; from the other seeds: {detail}"
        claims.append({"id": claim.id, "experiment": claim.experiment, "statement": claim.statement,
                       "paper": claim.paper, "rule": claim.rule, "status": status, "detail": detail})
    title = 'Reproduction of "Grokking Tickets" (Minegishi et al.)' + (" - QUICK machinery check" if pr.quick else "")
    return clean({
        "title": title,
        "preset": pr.name,
        "quick": pr.quick,
        "note": QUICK_NOTE if pr.quick else None,
        "seeds": list(seeds),
        "runs": dict(counts),
        "aggregation": AGGREGATION_RULE,
        "settings": [vars(s) for s in PAPER_SETTINGS],
        "claims": claims,
        "experiments": [_experiment_section(e, pr, seeds, measures.get(e.name, []), failures) for e in experiments],
    })


def verdict_line(claim: Mapping) -> str:
    """``<id>: <status> - <detail>``."""
    return f"{claim['id']}: {claim['status']} - {claim['detail']}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    def cell(x) -> str:
        return "" if x is None else str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: Mapping) -> str:
    """The report as Markdown: verdicts, settings, aggregation rule, one table per experiment."""
    parts = [f"# {report['title']}", ""]
    if report.get("note"):
        parts += [f"> {report['note']}", ""]
    runs = report["runs"]
    parts += [f"Preset `{report['preset']}`, seeds {report['seeds']}; this invocation trained {runs['trained']} runs, "
              f"reused {runs['reused']} finished ones, {runs['failed']} failed.", "", "## Verdicts", ""]
    parts += [f"- **{c['id']}** ({c['statement']}): **{c['status']}** - {c['detail']}. Paper: {c['paper']}. "
              f"Rule: {c['rule']}." for c in report["claims"]]
    parts += ["", "## Settings: paper text and official code", "",
              _md_table(["setting", "paper text", "official code", "used here"],
                        [[s["name"], s["text"], s["code"], s["used"]] for s in report["settings"]]),
              "", f"Numbers are {report['aggregation']}.", ""]
    for e in report["experiments"]:
        parts += [f"## {e['name']}: {e['title']} ({e['figures']})", ""]
        parts += [f"- error: {err}" for err in e["errors"]]
        if e["quantities"]:
            parts += ["", _md_table(["quantity", "ours (mean ± std)", "per seed", "paper"],
                                    [[q["name"], q["ours"], q["summary"]["values"], q["paper"]] for q in e["quantities"]])]
        parts.append("")
    return "\n".join(parts)


def _html_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    esc = lambda x: "" if x is None else _html.escape(str(x))  # noqa: E731
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(report: Mapping, out: str | Path) -> dict:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``out``; returns their paths."""
    out = Path(out)
    paths = {"json": out / REPRO_REPORT_JSON, "markdown": out / REPRO_REPORT_MD, "html": out / REPRO_REPORT_HTML}
    dump_json(report, paths["json"], indent=1)
    atomic_write_text(paths["markdown"], render_markdown(report))
    runs = report["runs"]
    rules: dict[str, list[str]] = {}  # each rule once, with the claims it judges
    for c in report["claims"]:
        rules.setdefault(c["rule"], []).append(c["id"])
    sections = [("Verdicts", _html_table(["claim", "status", "detail", "paper"],
                                         [[c["id"], c["status"], c["detail"], c["paper"]] for c in report["claims"]])),
                ("Rules of the verdicts", _html_table(["claims", "rule"], [[", ".join(ids), rule] for rule, ids in rules.items()])),
                ("Settings: paper text and official code",
                 _html_table(["setting", "paper text", "official code", "used here"],
                             [[s["name"], s["text"], s["code"], s["used"]] for s in report["settings"]]))]
    for e in report["experiments"]:
        body = "".join(f'<p class="note">error: {_html.escape(err)}</p>' for err in e["errors"])
        body += _html_table(["quantity", "ours (mean ± std)", "per seed", "paper"],
                            [[q["name"], q["ours"], q["summary"]["values"], q["paper"]] for q in e["quantities"]])
        sections.append((f"{e['name']}: {e['title']} ({e['figures']})", body))
    intro = (f"{report['note'] + '. ' if report.get('note') else ''}Preset {report['preset']}, seeds {report['seeds']}; "
             f"trained {runs['trained']}, reused {runs['reused']}, failed {runs['failed']}. Numbers are "
             f"{report['aggregation']}.")
    write_page(paths["html"], report["title"], sections, report_figures(report), intro=intro)
    return paths
