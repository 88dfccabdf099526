"""``analyze(x)``: every analysis of the toolkit on one model, as a :class:`Report`.

``x`` is a run directory, a checkpoint file (grokinterp ``.safetensors`` or a legacy ``.pth``), or a
model object (with an optional task). The report holds plain data only (lists, numbers, strings), so
``Report.to_json`` / ``Report.from_json`` round-trip and ``Report.figures()`` / ``Report.to_html()``
work from a report read back from disk.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import warnings

import torch
from einops import rearrange
from torch import Tensor
from tqdm import TqdmWarning

with warnings.catch_warnings():  # without ipywidgets in Jupyter, tqdm.auto falls back to the text bar: quietly
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

from ..circuits.clock_pizza import clock_or_pizza
from ..circuits import attention_summary, excluded_loss, fourier_gini, progress_measures, restricted_loss, trig_identity_check, weight_norms
from ..circuits.progress import select_epochs
from ..errors import CheckpointError, GrokinterpError
from ..fourier import (
    embedding_spectrum,
    fft2d,
    fourier_entropy,
    neuron_input_spectrum,
    neuron_logit_spectrum,
)
from ..fourier.basis import OP_SIGNS
from ..fourier.grid import GridAnalysis
from ..masks import density, layer_density
from ..metrics import grokking_times, split_scores
from ..models import as_weights, attention_pattern, check_task, config_to_dict, is_model, model_config, model_device
from ..runs import Run, load_checkpoint, load_run
from ..runs.importers import LEGACY_SUFFIXES, import_file
from ..runs.layout import CONFIG
from ..tasks import ModularArithmetic
from ..tickets import mask_frequency_alignment, mask_trajectory
from .compare import Comparison
from .report import Report, clean, floats
from .views import fourier_views

__all__ = ["Report", "analyze", "analyze_runs", "run_folders"]

METHODS = ("logit", "embed", "neuron")
#: Values of the (p, p, answers) float64 logit grid the 2D logit spectrum transforms at once.
SPECTRUM_BLOCK_ELEMENTS = 2**20


# ------------------------------------------------------------------------------ input handling
def _resolve(x, task: ModularArithmetic | None):
    """(model, task, run or None, source, parent, split note): the note says why the task or its
    split is assumed (``None`` when it is the one the source records or the caller gave)."""
    if isinstance(x, (str, Path)):
        path = Path(x)
        if not path.exists():
            raise CheckpointError(f"{path}: no such file or run directory")
        if path.is_dir():
            run = load_run(path)
            return run.model_at(), task or run.task, run, str(path), run.config.get("parent"), _run_note(run, task)
        if path.suffix in LEGACY_SUFFIXES and import_file(path).checkpoints:
            run = load_run(path)
            return run.model_at(), task or run.task, run, str(path), None, _run_note(run, task)
        model, info = load_checkpoint(path, task)
        return model, info.get("task"), None, str(path), None, info["split"] if info.get("task_assumed") else None
    if isinstance(x, Run):
        return x.model_at(), task or x.task, x, str(x.path), x.config.get("parent"), _run_note(x, task)
    if not is_model(x):
        raise GrokinterpError(
            f"analyze expects a run directory, a checkpoint file or a grokinterp model; got {type(x).__name__}"
        )
    return x, task, None, f"<{type(x).__name__} object>", None, None


def _run_note(run: Run, task) -> str | None:
    if task is None and run.config.get("task_assumed"):
        return run.config.get("split") or "assumed: the run records no split"
    return None


# ----------------------------------------------------------------------------- the analysis
def analyze(
    x,
    task: ModularArithmetic | None = None,
    *,
    progress: bool = True,
    progress_every: int | None = None,
    n_random_masks: int = 100,
    n_grid_neurons: int = 4,
    trajectory_prune_ratio: float = 0.6,
) -> Report | Comparison:
    """Analyse a run directory, a checkpoint file, a legacy ``.pth`` or a model (optionally with its
    task; without one, addition over all pairs with a 30 % split is assumed and the report says so).
    A folder without ``config.json`` whose sub-folders are run directories (a sweep's ``out_dir``)
    gives a :class:`Comparison` of those runs (see :func:`analyze_runs`).

    Computes: accuracy and loss; key frequencies by every method with the spectra behind them; neuron
    clusters; trig-identity fits; restricted / excluded loss; Gini; weight norms; Fourier entropy;
    the logits' 2D spectrum; attention (transformers); for masked runs the density per layer and
    the mask-vs-frequency alignment; for runs t_mem / t_gen / tau_grok and (``progress=True``) the
    progress measures over the checkpoints (every ``progress_every``-th epoch, default all), with, for
    dense runs, the Jaccard distance between the magnitude masks (removing
    ``trajectory_prune_ratio``) of consecutive measured checkpoints; a progress bar (terminal or
    Jupyter) counts the checkpoints. ``progress=False`` skips both.
    """
    if isinstance(x, (str, Path)) and Path(x).is_dir() and not (Path(x) / CONFIG).exists() and run_folders(x):
        return analyze_runs(run_folders(x), task=task, progress=progress, progress_every=progress_every,
                            n_random_masks=n_random_masks, n_grid_neurons=n_grid_neurons,
                            trajectory_prune_ratio=trajectory_prune_ratio, source=str(x))
    model, task, run, source, parent, task_note = _resolve(x, task)
    cfg = model_config(model)
    if task is None:
        task = ModularArithmetic(cfg.p, "add", "all", 0.3)
        task_note = task_note or "assumed: no task given or recorded (addition over all pairs, grokinterp's seed-0 30 % split)"
    assumed = task_note is not None
    try:
        check_task(model, task)
    except GrokinterpError as e:
        raise GrokinterpError(f"{source}: {e}") from None
    mask = run.mask if run is not None else None
    w = as_weights(model, mask)
    g = GridAnalysis(w, task)  # the grid forward and the neuron decomposition, computed once for every section
    B = g.basis
    acts = g.activations
    circuit = task.op in OP_SIGNS

    metrics = {}
    grid_index = task.all_pairs[:, 0] * task.p + task.all_pairs[:, 1]
    for split in ("train", "test"):
        idx = task.train_indices if split == "train" else task.test_indices
        rows = grid_index[idx].to(acts.logits.device)  # the task's tensors are CPU, the model's may not be
        metrics[f"{split}_loss"], metrics[f"{split}_acc"] = _split_scores(task, acts.logits, rows, task.labels(split))

    keys = {m: g.key_frequencies(m) for m in METHODS}
    freqs = keys["logit"]
    nf = g.neuron_frequencies()
    embed_coeffs = g.embed_coeffs  # (d, n): Fourier coefficients of each embedding dim
    row_norm = embed_coeffs.norm(dim=0)
    n_freq = B.n_freqs
    spectra = {
        "labels": [f"{k}" for k in range(n_freq)],
        "embedding": floats(embedding_spectrum(w, task)),
        "embedding_cos": floats(torch.stack([row_norm[r[0]] if (r := B.rows_of(k)) else row_norm.new_zeros(()) for k in range(1, n_freq)])),
        "embedding_sin": floats(torch.stack([row_norm[r[1]] if len(r := B.rows_of(k)) > 1 else row_norm.new_zeros(()) for k in range(1, n_freq)])),
        "logit": floats(neuron_logit_spectrum(w, task).square().sum(1).sqrt()),
        "neuron_input": floats(neuron_input_spectrum(w, task).square().sum(1).sqrt()),
    }
    sizes = {int(k): len(v) for k, v in nf.clusters().items()}
    neurons = {
        "n_neurons": int(nf.frequency.numel()),
        "n_clustered": int((nf.cluster >= 0).sum()),
        "threshold": nf.threshold,
        "frequency": nf.frequency.tolist(),
        "fraction": floats(nf.fraction, 4),
        "cluster": nf.cluster.tolist(),
        "cluster_sizes": sizes,
        "fractions": floats(nf.fractions, 3),
    }
    # a few neurons to show over the (a, b) grid: the best explained neuron of each of the largest clusters
    order = sorted(sizes, key=lambda k: -sizes[k])[:n_grid_neurons]
    chosen = [max(nf.clusters()[k], key=lambda i: float(nf.fraction[i])) for k in order]
    if len(chosen) < n_grid_neurons:
        rest = [i for i in torch.argsort(nf.variance, descending=True).tolist() if i not in chosen]
        chosen += rest[: n_grid_neurons - len(chosen)]
    observed = g.observed
    outside = torch.ones(task.p * task.p, dtype=torch.bool, device=acts.post.device)
    outside[grid_index.to(outside.device)] = False  # pairs outside the task: shown blank, left out of fits
    shown = acts.post[:, torch.as_tensor(chosen, dtype=torch.long, device=acts.post.device)]
    post = rearrange(shown.masked_fill(outside[:, None], float("nan")), "(a b) m -> m a b", a=task.p)
    grids = {"neurons": chosen, "activations": [floats(post[j], 4) for j in range(len(chosen))]}

    spec2d = []  # the 2D spectrum needs every pair: left empty for a task with part of the grid
    if observed.full:
        spec2d = _logit_spectrum_2d(acts.logits, B)

    gini = fourier_gini(w, task)
    norms = weight_norms(w)
    report = Report(
        source=source,
        model=config_to_dict(cfg),
        task=task.to_dict(),
        task_assumed=assumed,
        task_note=task_note,
        basis=B.kind,
        metrics=metrics,
        key_frequencies=keys,
        spectra=spectra,
        neurons=neurons,
        weight_norms={"l1": norms.l1, "l2": norms.l2},
        gini={"embed": gini.embed, "logit": gini.logit},
        fourier_entropy={"in": fourier_entropy(w, "in", task=task), "out": fourier_entropy(w, "out", task=task)},
        logit_spectrum_2d=floats(spec2d, 4),
        neuron_grids=grids,
        parent=parent,
        views=fourier_views(w, B, nf, acts.post, chosen, full_grid=task.pairs == "all"),
    )
    if circuit and freqs:
        check = trig_identity_check(g, task, freqs=freqs)
        report.trig = {
            "supported": check.supported,
            "freqs": check.freqs,
            "residual_fraction": check.residual_fraction,
            "logit_fraction": check.logit_fraction,
            "fit": {"alpha": floats(check.fit.alpha), "per_frequency": floats(check.fit.per_frequency),
                    "fraction_explained": check.fit.fraction_explained},
            "verdicts": [asdict(v) for v in check.verdicts],
        }
        for name, fn in (("restricted_loss", restricted_loss), ("excluded_loss", excluded_loss)):
            ab = fn(g, task, freqs)
            setattr(report, name, {"loss": ab.loss, "full_loss": ab.full_loss, "freqs": ab.freqs,
                                   "per_frequency": {str(k): v for k, v in ab.per_frequency.items()}})
    if w.kind == "transformer":
        report.attention = _attention_section(model, g, task)
    if task.op == "add" and task.pairs == "all" and freqs:
        # the diagnostics read the model as loaded (for a masked run: its stored, unmasked weights)
        report.clock_pizza = _clock_pizza_section(model, task, freqs, g if mask is None else None)
    if mask is not None:
        report.mask = _mask_section(model, w, mask, freqs, n_random_masks)
    if run is not None:
        report.history = [dict(r) for r in run.history]
        if report.history and all("train_acc" in r and "test_acc" in r for r in report.history):
            report.times = asdict(grokking_times(run.history))
        if progress and len(run.checkpoint_epochs) > 1:
            report.progress = _progress_section(run, task, progress_every, mask, trajectory_prune_ratio)
    return report


def _split_scores(task, logits: Tensor, rows: Tensor, labels: Tensor) -> tuple[float, float]:
    """:func:`grokinterp.metrics.split_scores` of the grid logits' ``rows``; a split of more than
    :data:`SPECTRUM_BLOCK_ELEMENTS` logits is scored in blocks of rows (mean loss ``Σ_b n_b loss_b / N``,
    accuracy from the count of correct rows), so that its float64 log-softmax stays bounded."""
    labels = labels.to(logits.device)
    if rows.numel() * logits.shape[1] <= SPECTRUM_BLOCK_ELEMENTS * 4:
        return split_scores(task, logits[rows], labels)
    step = max(1, SPECTRUM_BLOCK_ELEMENTS // logits.shape[1])
    loss, correct = 0.0, 0
    for r, y in zip(rows.split(step), labels.split(step)):
        block_loss, block_acc = split_scores(task, logits[r], y)
        loss += block_loss * len(r)
        correct += round(block_acc * len(r))
    return loss / rows.numel(), correct / rows.numel()


def _logit_spectrum_2d(logits: Tensor, B) -> Tensor:
    """``sqrt(Σ_c |F (L_c - mean L_c) F^T|²)``: the norm over the answers c of the 2D Fourier
    components of each answer's logit grid ``L_c[a, b]`` centred over the grid, in blocks of answers
    (at most :data:`SPECTRUM_BLOCK_ELEMENTS` float64 values of the grid at once)."""
    grid = rearrange(logits, "(a b) c -> a b c", a=B.p)
    step = max(1, SPECTRUM_BLOCK_ELEMENTS // (B.p * B.p))
    norms = []
    for c0 in range(0, B.p, step):
        block = grid[..., c0 : c0 + step].double()
        block = block - block.mean(dim=(0, 1), keepdim=True)
        norms.append(fft2d(block, B).norm(dim=-1))
    return norms[0] if len(norms) == 1 else torch.stack(norms, dim=-1).norm(dim=-1)


def _clock_pizza_section(model, task, freqs, grid: GridAnalysis | None = None) -> dict:
    """Zhong et al.'s diagnostics (:mod:`grokinterp.circuits.clock_pizza`); for an MLP, which reads
    ``E_a + E_b``, gradient symmetricity is 1 by construction and the verdict rests on the logits."""
    cp = clock_or_pizza(model, freqs, task, grid=grid)
    return {
        "verdict": cp.verdict, "reason": cp.reason, "gradient_symmetricity": cp.gradient_symmetricity,
        "distance_irrelevance": cp.distance_irrelevance, "circularity": cp.circularity,
        "freqs": cp.templates.freqs, "clock_fve": floats(cp.templates.clock, 4), "pizza_fve": floats(cp.templates.pizza, 4),
    }


def _attention_section(model, g: GridAnalysis, task) -> dict:
    summary = attention_summary(g, task)
    examples = task.test_inputs[:1] if len(task.test_inputs) else task.train_inputs[:1]
    pattern = attention_pattern(model, examples.to(model_device(model)))[0]
    a, b = examples[0].tolist()
    tokens = [str(a), str(b)] + (["="] if model_config(model).eq_token else [])
    return {
        "layer": summary.layer,
        "mean": floats(summary.mean, 4),
        "frequency": summary.frequency.tolist(),
        "fraction": floats(summary.fraction, 4),
        "to_a_mean": floats(summary.to_a.nanmean((1, 2)), 4),  # NaN marks pairs outside the task
        "example": {"tokens": tokens, "pattern": floats(pattern, 4)},
    }


def _mask_section(model, w, mask, freqs, n_random) -> dict:
    out: dict = {"density": density(mask), "layer_density": layer_density(mask)}
    if freqs:
        # the kept trained weights, not the bare 0/1 pattern: a magnitude ticket's structure is in what it keeps
        al = mask_frequency_alignment(mask, model, freqs, n_random=n_random, pattern="kept_weights")
        out["alignment"] = {"pattern": "kept_weights", "share": al.share, "random_mean": al.random_mean, "random_std": al.random_std,
                            "ratio": al.ratio, "z_score": al.z_score, "frequencies": list(al.frequencies),
                            "spectrum": floats(al.spectrum, 4)}
    # the neuron-input matrix: its kept pattern next to the trained weights
    name = next((n for n in (w.neuron_names[0], *mask) if n in mask))
    out["image"] = {"name": name, "mask": mask[name].to(torch.int8).tolist(), "weights": floats(w.tensors[name], 3)}
    return out


def _progress_section(run: Run, task, every, mask, prune_ratio: float) -> list[dict]:
    epochs = select_epochs(run.checkpoint_epochs, every)
    bar = tqdm(total=len(epochs), desc=f"analyze {Path(run.path).name}", unit="ckpt", leave=True)

    def spectra(g: GridAnalysis) -> dict:  # from the checkpoint the progress measures loaded
        try:
            entropy = fourier_entropy(g.weights, "in", task=task)
        except GrokinterpError:
            entropy = None
        bar.update(1)
        return {"fourier_entropy": entropy, "embedding_spectrum": floats(embedding_spectrum(g.weights, task), 4),
                "logit_spectrum": floats(neuron_logit_spectrum(g.weights, task).square().sum(1).sqrt(), 4)}

    with bar:
        frame = progress_measures(run, every=every, task=task, per_frequency=False, extra=spectra)
    if mask is None and len(epochs) > 1:
        trajectory = mask_trajectory(run, prune_ratio, epochs=epochs)
        frame["jaccard_prev"] = [None] + trajectory["jaccard"].tolist()
    frame = frame.drop(columns=[c for c in frame.columns if c == "key_freqs"])
    return clean(frame.to_dict("records"))


# ------------------------------------------------------------------------------- several runs
def run_folders(folder: str | Path) -> list[Path]:
    """The sub-folders of ``folder`` that are run directories (hold ``config.json``), by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((d for d in folder.iterdir() if d.is_dir() and (d / CONFIG).exists()), key=lambda d: d.name)


def analyze_runs(
    paths_or_reports: Sequence,
    names: Sequence[str] | None = None,
    *,
    task: ModularArithmetic | None = None,
    source: str = "",
    **kwargs,
) -> Comparison:
    """Analyse several runs (run directories, checkpoints, models, or existing :class:`Report`
    objects, mixed freely) for one report comparing them: a :class:`Comparison` whose
    ``to_html(path)`` shows every run's curves on one shared epoch axis, aligned spectra and
    progress measures, a checkpoint slider and one summary table. A sweep folder (sub-folders that
    are runs) may be passed as the only item. ``names`` default to the folder / file names;
    ``kwargs`` go to :func:`analyze`."""
    items = list(paths_or_reports) if not isinstance(paths_or_reports, (str, Path)) else [paths_or_reports]
    if len(items) == 1 and isinstance(items[0], (str, Path)) and not (Path(items[0]) / CONFIG).exists() and run_folders(items[0]):
        source = source or str(items[0])
        items = run_folders(items[0])
    if not items:
        raise GrokinterpError("analyze_runs needs at least one run directory, checkpoint, model or report")
    if names is not None and len(list(names)) != len(items):
        raise GrokinterpError(f"analyze_runs got {len(items)} runs but {len(list(names))} names; give one name per run")
    reports = []
    for item in tqdm(items, desc="analyze runs", unit="run", leave=True, disable=not kwargs.get("progress", True) or len(items) < 2):
        if isinstance(item, Report):
            reports.append(item)
            continue
        report = analyze(item, task, **kwargs)
        if isinstance(report, Comparison):
            raise GrokinterpError(f"{item}: a folder of runs cannot be one run of a comparison; pass its runs instead")
        reports.append(report)
    if names is None:
        names = [Path(r.source).name if isinstance(i, (str, Path)) else (Path(r.source).name or f"run {k}")
                 for k, (i, r) in enumerate(zip(items, reports))]
        if len(set(names)) != len(names):
            names = [f"{k}: {n}" for k, n in enumerate(names)]
    return Comparison(reports, list(names), source)
