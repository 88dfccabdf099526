"""The :class:`Report`: everything :func:`grokinterp.analyze` found about one model, as plain data
(lists, numbers, strings), so that ``to_json`` / ``from_json`` round-trip and ``figures()`` /
``to_html()`` work from a report read back from disk."""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Optional

from torch import Tensor

from ..errors import CheckpointError, GrokinterpError
from ..safeio import atomic_write_text
from .figures import report_figures, report_html
from .html import PlotlyJS

__all__ = ["Report", "clean", "dump_json", "floats", "load_json"]


def dump_json(data, path: str | Path | None = None, indent: int | None = None) -> str:
    """``data`` as strict JSON text (no NaN), also written atomically to ``path`` when given."""
    text = json.dumps(data, indent=indent, allow_nan=False)
    if path is not None:
        atomic_write_text(path, text)
    return text


def load_json(text_or_path: str | Path, what: str):
    """The JSON value of a text (starting with ``{``) or of a file, with an error naming ``what``."""
    text = str(text_or_path)
    if not text.lstrip().startswith("{"):
        try:
            text = Path(text_or_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{text_or_path}: cannot read the {what} ({e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise GrokinterpError(f"not a JSON {what}: {e}") from None


def floats(t: Tensor | list, digits: int = 6) -> list:
    """A tensor as nested lists of floats rounded to ``digits`` significant digits (NaN → None)."""
    values = t.detach().double().tolist() if isinstance(t, Tensor) else t
    spec = f".{digits}g"

    def number(x):
        if x is None or (isinstance(x, float) and not math.isfinite(x)):
            return None
        return float(format(x, spec))

    def r(x):
        if isinstance(x, list):
            if not any(isinstance(v, list) for v in x):  # a row of numbers: one comprehension, no call per value
                return [None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(format(v, spec)) for v in x]
            return [r(v) for v in x]
        return number(x)

    return r(values)


def clean(obj: Any) -> Any:
    """Plain JSON types: tensors to lists, dict keys to strings, non-finite floats to None."""
    if isinstance(obj, Tensor):
        return floats(obj) if obj.is_floating_point() else obj.tolist()
    if isinstance(obj, Mapping):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, float):
        return float(f"{obj:.8g}") if math.isfinite(obj) else None
    if isinstance(obj, (bool, int, str)) or obj is None:
        return obj
    if hasattr(obj, "item"):
        return clean(obj.item())
    raise TypeError(f"cannot put {type(obj).__name__} in a report")


@dataclass
class Report:
    """Everything :func:`analyze` found, as plain data (``clock_pizza``: the clock-vs-pizza
    diagnostics and verdict of an addition model over the full grid).

    Sections that do not apply are ``None`` (``attention`` for the MLP, ``mask`` for dense runs,
    ``times`` / ``history`` / ``progress`` without a run directory, the circuit sections for ops with
    no Fourier circuit). ``task_assumed`` is True when the task or its train/test split is a guess
    (nothing given or recorded says how the split was made), and ``task_note`` then says why; the
    "train" numbers are then those of the guessed split. ``logit_spectrum_2d`` is empty for a task with
    part of the (a, b) grid (``pairs="a>b"`` ...): the 2D spectrum needs every pair. ``views`` holds the matrices of the weight figures (W_E, W_L and the
    neuron-input map in the Fourier basis, per-neuron 2D spectra, W_L per cluster, the SVD of W_E;
    see :mod:`grokinterp.report.views`); reports written before it existed read back without it.
    """

    source: str
    model: dict
    task: dict
    task_assumed: bool
    basis: str
    metrics: dict
    key_frequencies: dict
    spectra: dict
    neurons: dict
    weight_norms: dict
    gini: dict
    fourier_entropy: dict
    logit_spectrum_2d: list
    neuron_grids: dict
    trig: Optional[dict] = None
    restricted_loss: Optional[dict] = None
    excluded_loss: Optional[dict] = None
    attention: Optional[dict] = None
    mask: Optional[dict] = None
    times: Optional[dict] = None
    history: Optional[list] = None
    progress: Optional[list] = None
    parent: Optional[dict] = None
    task_note: Optional[str] = None
    views: Optional[dict] = None
    clock_pizza: Optional[dict] = None

    # ------------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        return clean(asdict(self))

    def to_json(self, path: str | Path | None = None, indent: int | None = None) -> str:
        return dump_json(self.to_dict(), path, indent)

    @classmethod
    def from_dict(cls, d: Mapping) -> "Report":
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING}
        unknown, missing = sorted(set(d) - names), sorted(required - set(d))
        if unknown or missing:
            raise GrokinterpError(f"not a grokinterp report: unknown fields {unknown}, missing fields {missing}")
        return cls(**d)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "Report":
        return cls.from_dict(load_json(text_or_path, "report"))

    # ------------------------------------------------------------------------------ summary
    def summary(self) -> str:
        """A few lines of text: model, accuracy, key frequencies, losses, grokking times."""
        m, t = self.model, self.task
        lines = [
            f"source: {self.source}",
            f"model: {m['kind']} (p={m['p']}); task: {t['op']} mod {t['p']}, pairs {t['pairs']}"
            + (" (assumed)" if self.task_assumed else ""),
            *([f"task {self.task_note}; train / test numbers use that split"] if self.task_assumed and self.task_note else []),
            "accuracy: train {train_acc:.4f}, test {test_acc:.4f}; loss: train {train_loss:.3g}, test {test_loss:.3g}".format(
                **self.metrics
            ),
            "key frequencies: " + "; ".join(f"{k} {v}" for k, v in self.key_frequencies.items()),
        ]
        if self.restricted_loss is not None:
            lines.append(
                f"restricted loss {self.restricted_loss['loss']:.3g}, excluded loss {self.excluded_loss['loss']:.3g} "
                f"(full train loss {self.restricted_loss['full_loss']:.3g})"
            )
        n = self.neurons
        lines.append(
            f"neurons in a frequency cluster: {n['n_clustered']} of {n['n_neurons']} "
            f"(fraction >= {n['threshold']}); Fourier entropy in {self.fourier_entropy['in']:.3f}"
        )
        if not self.logit_spectrum_2d:
            lines.append(f"2D logit spectrum: not computed (it needs every pair; the task has pairs {t['pairs']})")
        if self.times is not None:
            tau = self.times["tau_grok"]
            lines.append(
                f"t_mem = {self.times['t_mem']}, t_gen = {self.times['t_gen']}, "
                f"tau_grok = {'None' if tau is None else f'{tau:.2f}'}"
            )
        if self.mask is not None:
            lines.append(f"mask density {self.mask['density']:.3f}")
        if self.clock_pizza is not None:
            lines.append(f"clock or pizza: {self.clock_pizza['verdict']} ({self.clock_pizza['reason']})")
        return "\n".join(lines)

    def figures(self) -> dict:
        """Named plotly figures built from the report's data."""
        return report_figures(self)

    def to_html(self, path: str | Path, title: str | None = None, plotlyjs: PlotlyJS = "inline") -> Path:
        """One HTML file that opens offline (circuitsvis from its bundle; the summary's definitions
        as formulas drawn by MathJax). ``plotlyjs="inline"`` (default) puts plotly.js and MathJax in
        the file; ``"directory"`` writes ``plotly.min.js`` and ``mathjax-tex-svg.js`` once next to it
        and references them relatively (for a folder of reports)."""
        if title is None:
            title = f"grokinterp report: {Path(self.source).name}"
            if self.task_assumed:
                title += f" (task {self.task_note or 'assumed'})"
        return report_html([self], path, title, plotlyjs=plotlyjs)
