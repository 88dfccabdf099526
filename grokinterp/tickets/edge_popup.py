"""Edge-popup: learn which weights to keep (Ramanujan et al. 2020, "What's hidden in a randomly
weighted neural network?"), as used on grokking by Minegishi et al. ("Grokking Tickets", Table 1).

Every pruned tensor ``W`` gets a score tensor ``S`` of the same shape. The forward pass uses
``W ⊙ m(S)`` where ``m(S)`` keeps, per tensor, the ``round((1 - k) · n)`` entries of largest ``|S|``
(ties to the lower index). The top-k selection has no gradient, so the backward pass is
straight-through: ``∂L/∂|S| := ∂L/∂m = (∂L/∂(W ⊙ m)) ⊙ W`` for *every* score, kept or not, and
``∂L/∂S = sign(S) ∂L/∂|S|``.

Modes: ``weights="frozen"`` — only the scores learn (the weights stay bit-identical to the starting
checkpoint); ``weights="joint"`` — the weights learn too, with their own AdamW and weight decay.
Scores and weights have separate optimiser settings (both AdamW, full batch).

Score init: ``"uniform"`` — i.i.d. ``U(-1, 1)`` from ``seed`` (a random starting subnetwork, as in
the original method); ``"magnitude"`` — ``|W| / max |W|`` per tensor, so the starting subnetwork is
the per-layer magnitude mask of the starting weights.

Run directory (as training writes it): ``config.json`` (``train`` holds the trainer-compatible
fields, ``edge_popup`` the full settings, ``parent`` the source run, epoch, prune ratio and mode),
``metrics.jsonl`` (the trainer's metrics of the masked network, plus ``mask_changed``: the fraction
of mask entries that flipped since the previous evaluation), ``checkpoints/epoch_*.safetensors``
(the underlying weights, unmasked), ``scores/epoch_*.safetensors`` (the scores at each checkpoint;
the mask at that epoch is :func:`edge_popup_mask` of them), ``resume.safetensors`` (the optimiser
states at the last checkpoint, for ``resume=True``) and ``mask.safetensors`` (the final mask, written
at the end).

Resume: ``edge_popup(..., out_dir=d, resume=True)`` continues a killed run in ``d`` from its last
checkpoint (weights, scores, both optimisers, the mask of the last evaluation) and gives the same
numbers as an uninterrupted run. Only the schedule (``epochs``, ``eval_every``,
``checkpoint_every``, ``stop_at_test_acc``, ``threads``, ``progress``) may change on resume.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Mapping, Optional

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, GrokinterpError
from ..models import Model, answer_logits, build_model, config_to_dict, model_config, named_weights
from ..safeio import read_safetensors, write_safetensors
from ..tasks import ModularArithmetic
from .masks import Mask, density, save_mask
from .nets import Include, as_net, resolve_include
from .select import check_prune_ratio, n_keep, top_k_flat

__all__ = ["EdgePopupConfig", "EdgePopupResult", "edge_popup", "edge_popup_mask", "load_scores"]


@dataclass(frozen=True)
class EdgePopupConfig:
    """Settings of an edge-popup run (defaults are this package's, not the paper's, except the
    AdamW betas and the weight decay of the weights).

    ``weights``: ``"frozen"`` or ``"joint"``. ``score_*``: AdamW on the scores; ``weight_*``: AdamW
    on the weights (joint mode only). ``score_init``: ``"uniform"`` or ``"magnitude"``; ``seed``
    seeds the uniform init. Schedule fields as in :class:`~grokinterp.training.TrainConfig`.
    """

    epochs: int = 2000
    weights: Literal["frozen", "joint"] = "frozen"
    score_lr: float = 1e-2
    score_weight_decay: float = 0.0
    score_betas: tuple[float, float] = (0.9, 0.98)
    weight_lr: float = 1e-3
    weight_decay: float = 1.0
    weight_betas: tuple[float, float] = (0.9, 0.98)
    score_init: Literal["uniform", "magnitude"] = "uniform"
    seed: int = 0
    eval_every: int = 10
    checkpoint_every: int = 100
    stop_at_test_acc: Optional[float] = None
    threads: Optional[int] = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.weights not in ("frozen", "joint"):
            raise GrokinterpError(f"weights must be 'frozen' (only scores learn) or 'joint', got {self.weights!r}")
        if self.score_init not in ("uniform", "magnitude"):
            raise GrokinterpError(f"score_init must be 'uniform' or 'magnitude', got {self.score_init!r}")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise GrokinterpError(f"epochs must be a non-negative integer, got {self.epochs!r}")
        for name in ("eval_every", "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise GrokinterpError(f"{name} must be a positive integer, got {v!r}")
        for name in ("score_lr", "weight_lr"):
            if not getattr(self, name) > 0:
                raise GrokinterpError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("score_weight_decay", "weight_decay"):
            if getattr(self, name) < 0:
                raise GrokinterpError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("score_betas", "weight_betas"):
            b = getattr(self, name)
            if len(b) != 2 or not all(0 <= x < 1 for x in b):
                raise GrokinterpError(f"{name} must be two numbers in [0, 1), got {b!r}")
            object.__setattr__(self, name, tuple(float(x) for x in b))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["score_betas"], d["weight_betas"] = list(self.score_betas), list(self.weight_betas)
        return d

    def train_dict(self) -> dict:
        """The fields a :class:`~grokinterp.training.TrainConfig` reads (for ``Run.train_config``)."""
        return {
            "epochs": self.epochs,
            "lr": self.weight_lr,
            "weight_decay": self.weight_decay if self.weights == "joint" else 0.0,
            "betas": list(self.weight_betas),
            "warmup_epochs": 0,
            "eval_every": self.eval_every,
            "checkpoint_every": self.checkpoint_every,
            "stop_at_test_acc": self.stop_at_test_acc,
            "threads": self.threads,
            "progress": self.progress,
        }


@dataclass
class EdgePopupResult:
    model: Model
    scores: dict[str, Tensor]
    mask: Mask
    history: list[dict]
    run_dir: Optional[Path]

    @property
    def times(self):
        from ..training import grokking_times

        return grokking_times(self.history)

    @property
    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.history)


class _TopAbsStraightThrough(torch.autograd.Function):
    """Forward: 0/1 mask of the ``k`` largest entries; backward: the gradient passes unchanged."""

    @staticmethod
    def forward(ctx, abs_scores: Tensor, k: int) -> Tensor:
        keep = top_k_flat(abs_scores.detach().reshape(-1), k).reshape(abs_scores.shape)
        return keep.to(abs_scores.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return grad, None


def edge_popup_mask(scores: Mapping[str, Tensor], prune_ratio: float) -> Mask:
    """Per tensor, keep the ``round((1 - prune_ratio) · n)`` entries of largest ``|score|``."""
    prune_ratio = check_prune_ratio(prune_ratio)
    return {
        n: top_k_flat(s.detach().abs().reshape(-1), n_keep(s.numel(), prune_ratio)).reshape(s.shape)
        for n, s in scores.items()
    }


def load_scores(run_dir: str | Path, epoch: int) -> dict[str, Tensor]:
    """Scores saved at a checkpoint epoch of an edge-popup run."""
    return read_safetensors(Path(run_dir) / "scores" / f"epoch_{int(epoch):06d}.safetensors")[0]


def _source(source, epoch, task) -> tuple[Model, ModularArithmetic, dict]:
    from ..runs import Run, load_run, load_weights

    if isinstance(source, (str, Path, Run)):
        run = source if isinstance(source, Run) else load_run(source)
        if not run.checkpoint_epochs:
            raise GrokinterpError(f"{run.path}: the run has no checkpoints to start from")
        e = run.checkpoint_epochs[-1] if epoch is None else epoch
        model = load_weights(build_model(run.model_config), run.weights_at(e), f"{run.path} epoch {e}")
        task = task if task is not None else run.task
        info = {"run": str(run.path) if run.path is not None else None, "epoch": int(e)}
    else:
        model_config(source)  # raises for anything that is not a grokinterp model
        if epoch is not None:
            raise GrokinterpError("epoch= selects a checkpoint of a run; pass a run (path or Run), not a model")
        from ..runs import load_weights as _load

        model = _load(build_model(model_config(source)), {n: p.detach() for n, p in named_weights(source).items()}, "model")
        info = {"run": None, "epoch": None}
    if not isinstance(task, ModularArithmetic):
        raise GrokinterpError("edge_popup needs a task: pass task= (a ModularArithmetic) or a run that records one")
    if task.p != model_config(model).p:
        raise GrokinterpError(f"the model is built for p={model_config(model).p} but the task has p={task.p}")
    return model, task, info


def _init_scores(weights: Mapping[str, Tensor], names, cfg: EdgePopupConfig) -> dict[str, nn.Parameter]:
    g = torch.Generator().manual_seed(int(cfg.seed))
    out = {}
    for n in names:
        w = weights[n].detach()
        if cfg.score_init == "uniform":
            s = torch.rand(w.shape, generator=g, dtype=w.dtype) * 2 - 1
        else:
            s = w.abs() / w.abs().max().clamp_min(torch.finfo(w.dtype).tiny)
        out[n] = nn.Parameter(s)
    return out


def _progress(cfg: EdgePopupConfig, start: int):
    if not cfg.progress or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=cfg.epochs, initial=start, desc="edge-popup", unit="ep", leave=False)


_SCHEDULE = ("epochs", "eval_every", "checkpoint_every", "stop_at_test_acc", "threads", "progress")


def _restore(writer, record, model, scores, opt_s, trainable, opt_w) -> tuple[int, list[dict], Mask]:
    """Load the last checkpoint of a killed edge-popup run: weights, scores, optimiser states, the
    mask of the last evaluation, and the metrics up to that checkpoint."""
    from ..runs import checkpoint_name, load_optimiser_state, load_weights, read_resume_state

    old = writer.read_config()
    if "edge_popup" not in old:
        raise CheckpointError(f"{writer.path}: holds a training run, not an edge-popup run; choose a new out_dir")
    writer.check_resumable(old, record, ("task", "model", "parent"))
    for key, value in record["edge_popup"].items():
        if key not in _SCHEDULE and old["edge_popup"].get(key) != value:
            raise CheckpointError(
                f"{writer.path}: cannot resume with {key}={json.dumps(value)}; the run used "
                f"{json.dumps(old['edge_popup'].get(key))}"
            )
    epoch, weights, stored = read_resume_state(writer.path)
    saved_scores, _ = read_safetensors(writer.path / "scores" / checkpoint_name(epoch))
    load_weights(model, weights, f"{writer.path} epoch {epoch}")
    with torch.no_grad():
        for n, s in scores.items():
            if n not in saved_scores or saved_scores[n].shape != s.shape:
                raise CheckpointError(f"{writer.path}: scores at epoch {epoch} lack a {tuple(s.shape)} tensor {n!r}")
            s.copy_(saved_scores[n])
    load_optimiser_state(opt_s, scores, stored, prefix="scores/")
    if opt_w is not None:
        load_optimiser_state(opt_w, trainable, stored, prefix="weights/")
    missing = [n for n in scores if f"prev_mask/{n}" not in stored]
    if missing:
        raise CheckpointError(f"{writer.path / 'resume.safetensors'}: lacks the last evaluated mask of {missing}")
    prev = {n: stored[f"prev_mask/{n}"].bool() for n in scores}
    history = writer.truncate_metrics(epoch)
    writer.update_config({**old, "train": record["train"], "edge_popup": record["edge_popup"]})
    return epoch, history, prev


def _library_versions() -> dict[str, str]:
    from ..training import library_versions

    return library_versions()


def edge_popup(
    source,
    prune_ratio: float = 0.6,
    out_dir: str | Path | None = None,
    *,
    epoch: int | None = None,
    task: ModularArithmetic | None = None,
    include: Include = None,
    config: EdgePopupConfig | None = None,
    resume: bool = False,
    **overrides,
) -> EdgePopupResult:
    """Train edge-popup scores (and, in joint mode, the weights) from a starting point.

    Args:
        source: a run (directory path or :class:`~grokinterp.runs.Run`) — start from its checkpoint
            at ``epoch`` (default: the last; the paper starts from a memorised one) — or a grokinterp
            model (with ``task``). The source is never modified; a run's own mask is not applied.
        prune_ratio: fraction removed in every pruned tensor (density ``1 - prune_ratio`` per layer).
        out_dir: run directory to write (``None``: in memory only).
        include: tensors that get scores (default: every weight matrix, embedding and unembedding
            included).
        config / overrides: :class:`EdgePopupConfig`, or single fields (``weights="joint"``,
            ``epochs=600``, ``score_lr=...``).
        resume: continue a killed run in ``out_dir`` from its last checkpoint (or start it, if
            ``out_dir`` holds no run yet). Pass the same source, prune ratio and settings.

    Returns an :class:`EdgePopupResult` (model with the final weights, scores, final mask, history,
    run_dir; ``times`` gives t_mem / t_gen of the masked network).
    """
    from ..runs import RunWriter, checkpoint_name, optimiser_state
    from ..training import cross_entropy_f64, evaluate

    prune_ratio = check_prune_ratio(prune_ratio)
    cfg = config if config is not None else EdgePopupConfig()
    if not isinstance(cfg, EdgePopupConfig):
        raise GrokinterpError(f"config must be an EdgePopupConfig, got {type(cfg).__name__}")
    try:
        cfg = dataclasses.replace(cfg, **overrides)
    except TypeError as e:
        raise GrokinterpError(f"unknown edge-popup setting: {e}; expected fields of EdgePopupConfig") from None
    model, task, info = _source(source, epoch, task)
    names = resolve_include(as_net(model), include)
    params = named_weights(model)
    scores = _init_scores(params, names, cfg)
    keep = {n: n_keep(params[n].numel(), prune_ratio) for n in names}

    joint = cfg.weights == "joint"
    was_trainable = {n: p.requires_grad for n, p in params.items()}
    trainable = {n: p for n, p in params.items() if p.requires_grad} if joint else {}
    if not joint:
        for p in params.values():
            p.requires_grad_(False)
    opt_s = torch.optim.AdamW(
        list(scores.values()), lr=cfg.score_lr, betas=cfg.score_betas, weight_decay=cfg.score_weight_decay
    )
    opt_w = (
        torch.optim.AdamW(list(trainable.values()), lr=cfg.weight_lr, betas=cfg.weight_betas, weight_decay=cfg.weight_decay)
        if trainable
        else None
    )

    def masked(differentiable: bool) -> dict[str, Tensor]:
        out = {}
        for n in names:
            if differentiable:
                m = _TopAbsStraightThrough.apply(scores[n].abs(), keep[n])
                out[n] = params[n] * m
            else:
                out[n] = params[n].detach() * edge_popup_mask({n: scores[n]}, prune_ratio)[n]
        return out

    record = {
        "task": task.to_dict(),
        "model": config_to_dict(model_config(model)),
        "train": cfg.train_dict(),
        "edge_popup": {**cfg.to_dict(), "prune_ratio": prune_ratio, "include": names},
        "seeds": {"split": task.seed, "init": model_config(model).seed, "scores": cfg.seed},
        "mask": {"density": None, "file": "mask.safetensors", "note": "final edge-popup mask, written at the end"},
        "parent": {**info, "kind": "edge_popup", "prune_ratio": prune_ratio, "weights": cfg.weights},
        "epoch_convention": "epoch e = after e full-batch steps; epoch 0 = the starting checkpoint",
        "versions": _library_versions(),
    }
    if resume and out_dir is None:
        raise GrokinterpError("resume=True needs the out_dir of the edge-popup run to continue")
    writer = RunWriter(out_dir) if out_dir is not None else None
    history: list[dict] = []
    prev_mask: list[Mask] = [edge_popup_mask(scores, prune_ratio)]
    start = 0
    if writer is not None and resume and (writer.path / "config.json").exists():
        start, history, prev_mask[0] = _restore(writer, record, model, scores, opt_s, trainable, opt_w)
    elif writer is not None:
        writer.create(record, None)

    def save(e: int) -> None:
        if writer is None:
            return
        write_safetensors(
            {n: s.detach() for n, s in scores.items()},
            writer.path / "scores" / checkpoint_name(e),
            {"grokinterp_kind": "edge_popup_scores", "epoch": str(e), "prune_ratio": repr(prune_ratio)},
        )
        state = {f"prev_mask/{n}": m.to(torch.uint8) for n, m in prev_mask[0].items()}
        state.update(optimiser_state(opt_s, scores, prefix="scores/"))
        if opt_w is not None:
            state.update(optimiser_state(opt_w, trainable, prefix="weights/"))
        writer.save_checkpoint(model, task, e, state)

    def log(e: int) -> bool:
        mask = edge_popup_mask(scores, prune_ratio)
        changed = sum(int((mask[n] != prev_mask[0][n]).sum()) for n in names) / sum(m.numel() for m in mask.values())
        prev_mask[0] = mask
        row = {"epoch": e, **evaluate(model, task, masked(False)), "density": density(mask), "mask_changed": changed}
        history.append(row)
        if writer is not None:
            writer.append_metrics(row)
        return cfg.stop_at_test_acc is not None and row["test_acc"] > cfg.stop_at_test_acc

    torch.set_flush_denormal(True)
    old_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        if start == 0:
            stop = log(0)
            save(0)
        else:
            stop = history[-1]["epoch"] == start and cfg.stop_at_test_acc is not None and (
                history[-1]["test_acc"] > cfg.stop_at_test_acc
            )
        x, y = task.train_inputs, task.train_labels
        bar = _progress(cfg, start)
        for e in range(start + 1, cfg.epochs + 1):
            if stop:
                break
            loss = cross_entropy_f64(answer_logits(model, x, masked(True)), y)
            opt_s.zero_grad(set_to_none=True)
            if opt_w is not None:
                opt_w.zero_grad(set_to_none=True)
            loss.backward()
            opt_s.step()
            if opt_w is not None:
                opt_w.step()
            last = e == cfg.epochs
            if e % cfg.eval_every == 0 or last:
                stop = log(e)
            if e % cfg.checkpoint_every == 0 or last or stop:
                save(e)
            if bar is not None:
                bar.update(1)
                if e % cfg.eval_every == 0:
                    bar.set_postfix(train=f"{history[-1]['train_acc']:.3f}", test=f"{history[-1]['test_acc']:.3f}")
        if bar is not None:
            bar.close()
    finally:
        if cfg.threads:
            torch.set_num_threads(old_threads)
        for n, p in params.items():
            p.requires_grad_(was_trainable[n])
    final = edge_popup_mask(scores, prune_ratio)
    if writer is not None:
        save_mask(final, writer.path / "mask.safetensors", {"kind": "edge_popup", "prune_ratio": prune_ratio})
        rec = writer.read_config()
        rec["mask"]["density"] = density(final)
        writer.update_config(rec)
    return EdgePopupResult(model, {n: s.detach() for n, s in scores.items()}, final, history, writer.path if writer else None)

