"""A comparison of several runs (a base run and its tickets, controls, seeds, a sweep's points):
their reports under one name each, one summary table, and one page with every run's curves on a
shared epoch axis, aligned spectra and progress measures, and a checkpoint slider."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..errors import GrokinterpError
from .figures import comparison_figures, lookup, report_figures, report_html, summary_rows
from .html import PlotlyJS
from .report import Report, dump_json, load_json

__all__ = ["Comparison"]


@dataclass
class Comparison:
    """Several :class:`Report` objects, one name each (``names[i]`` is ``reports[i]``'s)."""

    reports: list[Report]
    names: list[str] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        self.reports = list(self.reports)
        if not self.reports:
            raise GrokinterpError("a comparison needs at least one report")
        if not all(isinstance(r, Report) for r in self.reports):
            kinds = sorted({type(r).__name__ for r in self.reports})
            raise GrokinterpError(f"a comparison holds grokinterp Reports, got {kinds}")
        self.names = [str(n) for n in self.names] if self.names else [Path(r.source).name or str(i) for i, r in enumerate(self.reports)]
        if len(self.names) != len(self.reports):
            raise GrokinterpError(f"{len(self.reports)} reports but {len(self.names)} names; give one name per report")
        if len(set(self.names)) != len(self.names):
            raise GrokinterpError(f"run names must be distinct, got {self.names}")

    def __len__(self) -> int:
        return len(self.reports)

    def __getitem__(self, name: str) -> Report:
        try:
            return self.reports[self.names.index(name)]
        except ValueError:
            raise KeyError(f"no run named {name!r}; the runs are {self.names}") from None

    def table(self) -> pd.DataFrame:
        """The summary table: one row per run, one column per quantity (accuracy, losses, key
        frequencies, restricted / excluded loss, Gini, norms, t_mem / t_gen / tau_grok, mask density)."""
        rows = [{label: lookup(r, path) for label, path in summary_rows()} for r in self.reports]
        return pd.DataFrame(rows, index=pd.Index(self.names, name="run"))

    def summary(self) -> str:
        """One line per run: accuracy, key frequencies and grokking times."""
        lines = [f"{len(self)} runs" + (f" in {self.source}" if self.source else "")]
        width = max(len(n) for n in self.names)
        for name, r in zip(self.names, self.reports):
            t = r.times or {}
            tau = t.get("tau_grok")
            lines.append(
                f"  {name:<{width}}  test acc {r.metrics['test_acc']:.4f}, key frequencies {r.key_frequencies.get('logit')}, "
                f"t_mem = {t.get('t_mem')}, t_gen = {t.get('t_gen')}, tau_grok = {'None' if tau is None else f'{tau:.2f}'}"
            )
        return "\n".join(lines)

    def figures(self) -> dict:
        """The comparison figures (see :func:`grokinterp.report.figures.comparison_figures`)."""
        return comparison_figures(self.reports, self.names)

    def run_figures(self, name: str) -> dict:
        """One run's own figures."""
        return report_figures(self[name])

    def to_html(self, path: str | Path, title: str | None = None, plotlyjs: PlotlyJS = "inline") -> Path:
        """One offline page comparing the runs (see :func:`grokinterp.report.figures.report_html`)."""
        title = title or f"grokinterp comparison: {', '.join(self.names)}"
        return report_html(self.reports, path, title, self.names, plotlyjs=plotlyjs)

    def to_dict(self) -> dict:
        return {"source": self.source, "names": list(self.names), "reports": [r.to_dict() for r in self.reports]}

    def to_json(self, path: str | Path | None = None, indent: int | None = None) -> str:
        return dump_json(self.to_dict(), path, indent)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "Comparison":
        d = load_json(text_or_path, "comparison")
        if not isinstance(d, dict) or set(d) != {"source", "names", "reports"}:
            raise GrokinterpError("not a grokinterp comparison: expected the fields source, names and reports")
        return cls([Report.from_dict(r) for r in d["reports"]], d["names"], d["source"])

    @classmethod
    def of(cls, reports: Sequence[Report], names: Sequence[str] | None = None) -> "Comparison":
        return cls(list(reports), list(names or []))
