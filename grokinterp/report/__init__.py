"""Reports: :func:`analyze` (everything on one model or run), the :class:`Report` it returns,
:func:`analyze_runs` and the :class:`Comparison` of several runs, the figure library (one for
reports, notebooks and docs: :mod:`grokinterp.report.figures`) and offline HTML."""

from .analyze import analyze, analyze_runs, run_folders
from .compare import Comparison
from .report import Report

__all__ = ["Comparison", "Report", "analyze", "analyze_runs", "run_folders"]
