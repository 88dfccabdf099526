"""Reports: :func:`analyze` (everything on one model or run), the :class:`Report` it returns, the
figures (one library for reports, notebooks and docs), plotting helpers and offline HTML."""

from .analyze import analyze
from .report import Report

__all__ = ["Report", "analyze"]
