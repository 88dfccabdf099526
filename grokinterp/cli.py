"""Command line: ``grokinterp train | demo | analyze | ticket | sweep | controls | critical | edge-popup |
reproduce``.

Every option is checked when it is read (numbers finite and in range, integers where epochs are
meant, prune ratios in [0, 1)); a bad value, and any error of the package, is printed as one line
``grokinterp <command>: error: ...`` with exit status 2. Commands that write refuse a non-empty
folder that is not their own output unless given ``--overwrite``; Ctrl-C stops cleanly (status 130)
and says how to continue.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from .checks import MAX_SEED
from .errors import GrokinterpError
from .models import HookedMLP, MLPConfig, build_model, config_from_dict, make_transformer
from .report import analyze
from .report.figures import report_html
from .reproduce import EXPERIMENTS, reproduce_tickets_paper, select
from .reproduce.report import verdict_line
from .runs.layout import CONFIG, REPRO_MANIFEST, REPRO_REPORT_HTML, REPRO_REPORT_JSON, REPRO_REPORT_MD, REPRO_RUNS
from .tasks import OPS, PAIR_SETS, PAPER_PRESETS, ModularArithmetic, task_from_dict
from .tickets import (
    EdgePopupConfig,
    critical_prune_ratio,
    edge_popup,
    grokking_ticket,
    ticket_controls,
    ticket_epoch_sweep,
    ticket_prune_sweep,
)
from .training import TrainConfig, train

DEMO_ENTRIES = {"base", "ticket", "base_report.json", "ticket_report.json", "report.html"}
REPRO_ENTRIES = {REPRO_RUNS, REPRO_MANIFEST, REPRO_REPORT_JSON, REPRO_REPORT_MD, REPRO_REPORT_HTML}


class UsageError(GrokinterpError):
    """A command line that does not parse: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(message)


# ------------------------------------------------------------------------------- value types
def _number(kind: Callable, check: Callable[[float], bool], expected: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {expected}") from None
        if isinstance(value, float) and not math.isfinite(value) or not check(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {expected}")
        return value

    parse.__name__ = expected
    return parse


positive_int = _number(int, lambda v: v >= 1, "a whole number >= 1")
count = _number(int, lambda v: v >= 0, "a whole number >= 0")
seed = _number(int, lambda v: 0 <= v <= MAX_SEED, f"a seed in [0, {MAX_SEED}]")
modulus = _number(int, lambda v: v >= 2, "a modulus >= 2")
positive = _number(float, lambda v: v > 0, "a finite number > 0")
non_negative = _number(float, lambda v: v >= 0, "a finite number >= 0")
fraction = _number(float, lambda v: 0 < v < 1, "a fraction in (0, 1)")
prune_ratio = _number(float, lambda v: 0 <= v < 1, "a prune ratio in [0, 1) (the fraction of weights removed)")
accuracy = _number(float, lambda v: 0 <= v <= 1, "an accuracy in [0, 1]")
step = _number(float, lambda v: 0 < v < 1, "a step in (0, 1)")


def _list(item: Callable, what: str):
    def parse(text: str) -> list:
        values = [v.strip() for v in text.split(",")]
        if not text.strip() or any(not v for v in values):
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {what}")
        return [item(v) for v in values]

    parse.__name__ = f"list of {what}"
    return parse


def executor_name(text: str) -> str:
    """An executor name, or a Dask scheduler address (``tcp://host:8786``)."""
    if text in EXECUTORS or "://" in text:
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(EXECUTORS)} or a Dask scheduler address (tcp://host:port)")


executor_name.__name__ = "executor"
EXECUTORS = ("auto", "inline", "threads", "process", "dask")

prune_ratios = _list(prune_ratio, "prune ratios in [0, 1)")
epochs_list = _list(count, "whole-number epochs")


# ------------------------------------------------------------------------------- output folders
def _prepare_out(path: str | Path, owns: Callable[[Path], bool], overwrite: bool) -> Path:
    """The output folder of a command: new, empty, or the command's own earlier output (which it
    continues); anything else is refused unless ``overwrite``, which empties it first."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise GrokinterpError(f"--out {out} is a file; expected a folder (new, empty, or this command's own output)")
    if not out.exists() or not any(out.iterdir()):
        return out
    if overwrite:
        here = Path.cwd().resolve()
        if out.resolve() in (here, *here.parents, Path.home().resolve()):
            raise GrokinterpError(f"--overwrite refuses to empty {out}: it is the working folder, one above it, or home")
        shutil.rmtree(out)
        return out
    if owns(out):
        return out
    raise GrokinterpError(
        f"--out {out} holds other files ({', '.join(sorted(p.name for p in out.iterdir())[:5])} ...); choose a new "
        "folder, or pass --overwrite to replace what it holds"
    )


def _is_run(path: Path) -> bool:
    return (path / CONFIG).is_file()


def _is_sweep(path: Path) -> bool:
    return all(_is_run(p) or p.suffix == ".csv" or p.name.startswith(".") for p in path.iterdir())


def _is_demo(path: Path) -> bool:
    return {p.name for p in path.iterdir()} <= DEMO_ENTRIES


def _is_reproduction(path: Path) -> bool:
    return all(p.name in REPRO_ENTRIES or p.name.startswith(".") for p in path.iterdir())


# ------------------------------------------------------------------------------- train
def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (modular arithmetic, or a paper's other task) into a run directory")
    p.add_argument("--task-preset", default=None, choices=sorted(PAPER_PRESETS),
                   help="a paper's task on vectors with its model and settings (regression, parity, images) "
                        "instead of modular arithmetic; --epochs, --lr, --weight-decay, --batch-size and the "
                        "schedule options override its values")
    p.add_argument("--mnist", default=None, help="local MNIST (a folder of the idx files, or an .npz) for tickets_mnist")
    p.add_argument("--model", choices=["mlp", "transformer"], default="mlp", help="the tickets MLP or a transformer")
    p.add_argument("--preset", default=None, choices=["nanda", "tickets", "pizza", "clock"],
                   help="transformer preset (default: nanda)")
    p.add_argument("--p", type=modulus, default=None, help="modulus (default: 67 for the MLP, the preset's p)")
    p.add_argument("--op", default="add", choices=sorted(OPS), help="the operation mod p")
    p.add_argument("--pairs", default=None, choices=PAIR_SETS,
                   help="pair set (default: a>=b for the MLP, all for the transformer)")
    p.add_argument("--frac-train", type=fraction, default=None, help="train fraction (default: 0.4 MLP, 0.3 transformer)")
    p.add_argument("--split-seed", type=seed, default=0, help="seed of the train/test split")
    p.add_argument("--seed", type=seed, default=0, help="seed of the initial weights")
    p.add_argument("--d-embed", type=positive_int, default=500, help="MLP embedding width")
    p.add_argument("--d-hidden", type=positive_int, default=48, help="MLP neurons")
    p.add_argument("--act", default=None, choices=["relu", "gelu", "quadratic"],
                   help="activation (quadratic: MLP only; default relu)")
    p.add_argument("--epochs", type=count, default=None, help="epochs (default: 10000 MLP, 25000 transformer)")
    p.add_argument("--lr", type=positive, default=None, help="AdamW learning rate (default: 1e-3, or the preset's)")
    p.add_argument("--weight-decay", type=non_negative, default=None, help="AdamW weight decay (default: 1, or the preset's)")
    p.add_argument("--warmup", type=count, default=0, help="linear learning-rate warm-up epochs")
    p.add_argument("--batch-size", type=positive_int, default=None, help="mini-batch size (default: full batch, or the preset's)")
    p.add_argument("--batch-seed", type=seed, default=0, help="seed of the mini-batch order")
    _schedule_options(p, checkpoint_every=None, eval_every=None)
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--resume", action="store_true", help="continue the killed run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace whatever --out holds")


def _schedule_options(p, checkpoint_every: int | None, eval_every: int | None = 10) -> None:
    """Schedule options; a default of ``None`` is resolved by the command (train: 10 and 100, or
    the task preset's)."""
    p.add_argument("--eval-every", type=positive_int, default=eval_every,
                   help="evaluate every this many epochs" + (" (default: 10, or the preset's)" if eval_every is None else ""))
    p.add_argument("--checkpoint-every", type=positive_int, default=checkpoint_every,
                   help="checkpoint every this many epochs" + (" (default: 100, or the preset's)" if checkpoint_every is None else ""))
    p.add_argument("--stop-at-test-acc", type=accuracy, default=None, help="stop once test accuracy exceeds this")
    p.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _preset_run(args: argparse.Namespace):
    """Model, task and settings of ``--task-preset`` (its values, then the options given)."""
    given = [flag for flag, value in (("--model", args.model != "mlp"), ("--preset", args.preset), ("--p", args.p),
                                      ("--op", args.op != "add"), ("--pairs", args.pairs), ("--frac-train", args.frac_train),
                                      ("--act", args.act)) if value]
    if given:
        raise GrokinterpError(f"--task-preset sets the task and the model; drop {', '.join(given)}")
    preset = PAPER_PRESETS[args.task_preset]
    if "path" in preset.needs and args.mnist is None:
        raise GrokinterpError(f"--task-preset {preset.name} needs --mnist PATH (a folder of the MNIST idx files, or an .npz)")
    task = task_from_dict(preset.task_dict(**({"path": args.mnist} if args.mnist else {})))
    model = build_model(config_from_dict({**preset.model, "seed": args.seed}))
    settings = dict(preset.train)
    settings.update({k: v for k, v in (("epochs", args.epochs), ("lr", args.lr), ("weight_decay", args.weight_decay),
                                       ("batch_size", args.batch_size), ("eval_every", args.eval_every),
                                       ("checkpoint_every", args.checkpoint_every)) if v is not None})
    return model, task, settings


def cmd_train(args: argparse.Namespace) -> int:
    out = _prepare_out(args.out, _is_run, args.overwrite)
    if args.mnist is not None and args.task_preset != "tickets_mnist":
        raise GrokinterpError("--mnist is the data of --task-preset tickets_mnist")
    if args.task_preset is not None:
        model, task, settings = _preset_run(args)
        cfg = TrainConfig(**{**settings, "warmup_epochs": args.warmup, "batch_seed": args.batch_seed,
                             "stop_at_test_acc": args.stop_at_test_acc, "threads": args.threads,
                             "progress": not args.no_progress})
        return _train_and_print(model, task, cfg, out, args.resume)
    if args.model == "mlp":
        if args.preset is not None:
            raise GrokinterpError("--preset is for --model transformer")
        p = 67 if args.p is None else args.p
        model = HookedMLP(MLPConfig(p, d_embed=args.d_embed, d_hidden=args.d_hidden, act=args.act or "relu", seed=args.seed))
        pairs, frac, epochs = args.pairs or "a>=b", args.frac_train, args.epochs
        frac, epochs = 0.4 if frac is None else frac, 10_000 if epochs is None else epochs
    else:
        overrides = {"seed": args.seed, **({"p": args.p} if args.p is not None else {}), **({"act": args.act} if args.act else {})}
        model = make_transformer(args.preset or "nanda", **overrides)
        p = model.grokinterp_config.p
        pairs, frac, epochs = args.pairs or "all", args.frac_train, args.epochs
        frac, epochs = 0.3 if frac is None else frac, 25_000 if epochs is None else epochs
    task = ModularArithmetic(p, args.op, pairs, frac, seed=args.split_seed)
    cfg = TrainConfig(
        epochs=epochs, lr=1e-3 if args.lr is None else args.lr, weight_decay=1.0 if args.weight_decay is None else args.weight_decay,
        warmup_epochs=args.warmup, batch_size=args.batch_size, batch_seed=args.batch_seed,
        eval_every=args.eval_every or 10, checkpoint_every=args.checkpoint_every or 100,
        stop_at_test_acc=args.stop_at_test_acc, threads=args.threads, progress=not args.no_progress,
    )
    return _train_and_print(model, task, cfg, out, args.resume)


def _train_and_print(model, task, cfg: TrainConfig, out: Path, resume: bool) -> int:
    result = train(model, task, cfg, out_dir=out, resume=resume)
    t = result.times
    last = result.history[-1]
    print(f"run written to {out.resolve()}")
    print(f"epochs {last['epoch']}: train acc {last['train_acc']:.4f}, test acc {last['test_acc']:.4f}")
    print(f"t_mem = {t.t_mem}, t_gen = {t.t_gen}, tau_grok = {_fmt(t.tau_grok)}")
    return 0


# ------------------------------------------------------------------------------- demo
def _demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="the main job: base run, grokking ticket, comparison report")
    p.add_argument("--quick", action="store_true", help="small settings (p=23) that finish in well under a minute")
    p.add_argument("--out", default="runs/demo", help="folder for the runs and the report (a rerun continues it)")
    p.add_argument("--prune-ratio", type=prune_ratio, default=0.6, help="fraction of weights the ticket removes")
    p.add_argument("--overwrite", action="store_true", help="replace whatever --out holds")


def demo_settings(quick: bool):
    """(task, model config, train config) of the demo: the tickets paper's MLP on addition mod 67
    (a >= b pairs, 40 % train), or a p=23 version for ``--quick``."""
    if quick:
        return (ModularArithmetic(23, "add", "all", 0.5), MLPConfig(23, d_embed=500, d_hidden=48),
                TrainConfig(epochs=3000, lr=3e-3, eval_every=20, checkpoint_every=100, stop_at_test_acc=0.99,
                            threads=1))
    return (ModularArithmetic(67, "add", "a>=b", 0.4), MLPConfig(67),
            TrainConfig(epochs=30_000, eval_every=20, checkpoint_every=500, stop_at_test_acc=0.99))


def cmd_demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    task, model_cfg, cfg = demo_settings(args.quick)
    out = _prepare_out(args.out, _is_demo, args.overwrite)
    print(f"1/4 training the tickets MLP on {task.op} mod {task.p} ({len(task.train_inputs)} train pairs) to grokking ...")
    base = train(HookedMLP(model_cfg), task, cfg, out_dir=out / "base", resume=True)
    t = base.history[-1]["epoch"]
    print(f"    base: t_mem = {base.times.t_mem}, t_gen = {base.times.t_gen}, tau_grok = {_fmt(base.times.tau_grok)}")
    print(f"2/4 grokking ticket: magnitude mask at epoch {t} removing {args.prune_ratio:.0%} of the weights, "
          "rewound to the initial weights, retrained ...")
    ticket = grokking_ticket(out / "base", t, args.prune_ratio, out / "ticket", reuse=True)
    print(f"    ticket: t_mem = {ticket.times.t_mem}, t_gen = {ticket.times.t_gen}, tau_grok = {_fmt(ticket.times.tau_grok)}")
    print("3/4 analysing both runs ...")
    reports = [analyze(out / "base"), analyze(out / "ticket")]
    for name, report in zip(("base", "ticket"), reports):
        report.to_json(out / f"{name}_report.json")
    path = report_html(reports, out / "report.html", "grokinterp demo: base run and its grokking ticket", ["base", "ticket"])
    print("4/4 comparison")
    for name, r in zip(("base", "ticket"), reports):
        tt = r.times or {}
        print(f"    {name:<7} t_mem = {tt.get('t_mem')}, t_gen = {tt.get('t_gen')}, tau_grok = {_fmt(tt.get('tau_grok'))}, "
              f"key frequencies {r.key_frequencies['logit']}, test acc {r.metrics['test_acc']:.4f}")
    tb, tk = base.times.t_gen, ticket.times.t_gen
    if tb is not None and tk is not None:
        print(f"    the ticket generalised {'earlier' if tk < tb else 'later'} than the base run ({tk} vs {tb} epochs)")
    print(f"report: {path.resolve()}  ({time.perf_counter() - start:.0f} s)")
    return 0


# ------------------------------------------------------------------------------- analyze
def _analyze_parser(sub) -> None:
    p = sub.add_parser("analyze", help="analyse a run directory or checkpoint file")
    p.add_argument("path", help="run directory, .safetensors checkpoint or legacy .pth")
    p.add_argument("--html", default=None, help="write the interactive report here")
    p.add_argument("--json", default=None, help="write the report data here")
    p.add_argument("--no-progress", action="store_true", help="skip the progress measures over checkpoints")
    p.add_argument("--every", type=positive_int, default=None, help="progress measures every this many epochs (default: all)")


def cmd_analyze(args: argparse.Namespace) -> int:
    report = analyze(args.path, progress=not args.no_progress, progress_every=args.every)
    print(report.summary())
    if args.json:
        report.to_json(args.json)
        print(f"json: {Path(args.json).resolve()}")
    if args.html:
        report.to_html(args.html)
        print(f"html: {Path(args.html).resolve()}")
    return 0


# ------------------------------------------------------------------------------- tickets
def _ticket_parsers(sub) -> None:
    common = _Parser(add_help=False)
    common.add_argument("--run", required=True, help="base run directory")
    common.add_argument("--out", required=True, help="output directory")
    common.add_argument("--epochs", type=count, default=None, help="retraining epochs (default: the base run's)")
    common.add_argument("--stop-at-test-acc", type=accuracy, default=None, help="stop once test accuracy exceeds this")
    common.add_argument("--weight-decay", type=non_negative, default=None, help="retraining weight decay (default: the base run's)")
    common.add_argument("--scope", choices=["global", "layer"], default="global", help="magnitude threshold over all tensors or per tensor")
    common.add_argument("--overwrite", action="store_true", help="replace whatever --out holds")
    common.add_argument("--executor", type=executor_name, default="auto",
                        help=f"where the runs train: {', '.join(EXECUTORS)}, or a Dask scheduler address "
                             "(auto: this process, in one thread per core when there is more than one batch)")
    common.add_argument("--workers", type=positive_int, default=None, help="threads or processes (default: every core)")

    p = sub.add_parser("ticket", parents=[common], help="take one grokking ticket and retrain it")
    p.add_argument("--epoch", type=count, default=None, help="ticket epoch t (default: the last checkpoint)")
    p.add_argument("--prune-ratio", type=prune_ratio, default=0.6, help="fraction of weights removed")

    p = sub.add_parser("sweep", parents=[common], help="grokking tickets over prune ratios or ticket epochs")
    p.add_argument("over", choices=["prune-ratio", "epoch"], help="what varies")
    p.add_argument("--values", required=True, help="comma-separated prune ratios, or ticket epochs (checkpoints of the run)")
    p.add_argument("--epoch", type=count, default=None, help="ticket epoch of a prune-ratio sweep (default: the last checkpoint)")
    p.add_argument("--prune-ratio", type=prune_ratio, default=0.6, help="prune ratio of an epoch sweep")

    p = sub.add_parser("controls", parents=[common], help="norm-matched dense and pruning-at-init baselines")
    p.add_argument("--epoch", type=count, default=None, help="ticket epoch (default: the last checkpoint)")
    p.add_argument("--prune-ratio", type=prune_ratio, default=0.6, help="prune ratio of the ticket and the baselines")

    p = sub.add_parser("critical", parents=[common], help="critical prune ratio (bracketing search; weight decay 0 unless given)")
    p.add_argument("--epoch", type=count, default=None, help="ticket epoch (default: the last checkpoint)")
    p.add_argument("--step", type=step, default=0.01, help="grid step of the prune ratios")
    p.add_argument("--start", type=prune_ratio, default=0.6, help="first prune ratio tried")
    p.add_argument("--threshold", type=fraction, default=0.95,
                   help="a ticket generalises when its test accuracy exceeds this at some evaluation")

    p = sub.add_parser("edge-popup", help="edge-popup from a checkpoint of a run")
    p.add_argument("--run", required=True, help="run directory to start from")
    p.add_argument("--out", required=True, help="edge-popup run directory to write")
    p.add_argument("--epoch", type=count, default=None, help="starting checkpoint (default: the last)")
    p.add_argument("--prune-ratio", type=prune_ratio, default=0.6, help="fraction removed in every pruned tensor")
    d = EdgePopupConfig()
    p.add_argument("--weights", choices=["frozen", "joint"], default=d.weights, help="train the scores only, or the weights too")
    p.add_argument("--epochs", type=count, default=d.epochs, help="epochs")
    p.add_argument("--score-lr", type=positive, default=d.score_lr, help="AdamW learning rate of the scores")
    p.add_argument("--score-weight-decay", type=non_negative, default=d.score_weight_decay, help="AdamW weight decay of the scores")
    p.add_argument("--weight-lr", type=positive, default=d.weight_lr, help="AdamW learning rate of the weights (joint)")
    p.add_argument("--weight-decay", type=non_negative, default=d.weight_decay, help="AdamW weight decay of the weights (joint)")
    p.add_argument("--score-init", choices=["uniform", "kaiming_uniform", "magnitude"], default=d.score_init, help="initial scores")
    p.add_argument("--seed", type=seed, default=d.seed, help="seed of the random score inits (uniform, kaiming_uniform)")
    _schedule_options(p, checkpoint_every=d.checkpoint_every)
    p.add_argument("--resume", action="store_true", help="continue the killed edge-popup run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace whatever --out holds")


def _overrides(args) -> dict:
    return {n: getattr(args, n) for n in ("epochs", "stop_at_test_acc", "weight_decay") if getattr(args, n, None) is not None}


def _where(args) -> dict:
    """The executor options of a command that trains runs."""
    return {"executor": args.executor, "workers": args.workers}


def _print_table(table) -> None:
    cols = [c for c in ("kind", "method", "prune_ratio", "ticket_epoch", "density", "t_mem", "t_gen", "tau_grok",
                        "final_test_acc") if c in table.columns]
    print(table[cols].to_string(index=False))


def cmd_ticket(args) -> int:
    out = _prepare_out(args.out, _is_run, args.overwrite)
    t = grokking_ticket(args.run, args.epoch, args.prune_ratio, out, scope=args.scope, reuse=True, **_where(args), **_overrides(args))
    print(f"ticket run written to {out.resolve()}")
    _print_table(__import__("pandas").DataFrame([t.row()]))
    return 0


def cmd_sweep(args) -> int:
    out = _prepare_out(args.out, _is_sweep, args.overwrite)
    try:
        values = (prune_ratios if args.over == "prune-ratio" else epochs_list)(args.values)
    except argparse.ArgumentTypeError as e:
        raise UsageError(f"argument --values: {e}") from None
    if args.over == "prune-ratio":
        table = ticket_prune_sweep(args.run, values, args.epoch, out, scope=args.scope, **_where(args), **_overrides(args))
    else:
        table = ticket_epoch_sweep(args.run, values, args.prune_ratio, out, scope=args.scope, **_where(args), **_overrides(args))
    _print_table(table)
    print(f"table and runs written to {out.resolve()}")
    return 0


def cmd_controls(args) -> int:
    out = _prepare_out(args.out, _is_sweep, args.overwrite)
    table = ticket_controls(args.run, args.epoch, args.prune_ratio, out, scope=args.scope, **_where(args), **_overrides(args))
    _print_table(table)
    print(f"table and runs written to {out.resolve()}")
    return 0


def cmd_critical(args) -> int:
    out = _prepare_out(args.out, _is_sweep, args.overwrite)
    overrides = _overrides(args)
    wd = overrides.pop("weight_decay", 0.0)
    result = critical_prune_ratio(args.run, args.epoch, out, step=args.step, start=args.start,
                                  weight_decay=wd, threshold=args.threshold, scope=args.scope, **_where(args), **overrides)
    print(f"critical prune ratio: {result.prune_ratio} (step {result.step}, weight decay {wd}, "
          f"accuracy threshold {args.threshold})")
    return 0


def cmd_edge_popup(args) -> int:
    out = _prepare_out(args.out, _is_run, args.overwrite)
    settings = {n: getattr(args, n) for n in (
        "weights", "epochs", "score_lr", "score_weight_decay", "weight_lr", "weight_decay", "score_init", "seed",
        "eval_every", "checkpoint_every", "stop_at_test_acc", "threads",
    )}
    result = edge_popup(args.run, args.prune_ratio, out, epoch=args.epoch, resume=args.resume,
                        progress=not args.no_progress, **settings)
    last = result.history[-1]
    print(f"edge-popup run written to {out.resolve()}")
    print(f"epoch {last['epoch']}: train acc {last['train_acc']:.4f}, test acc {last['test_acc']:.4f}")
    return 0


# ------------------------------------------------------------------------------- reproduce
def _reproduce_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="reproduce a paper's experiments and judge its claims")
    p.add_argument("paper", choices=["tickets-paper"], help="the paper (tickets-paper: Minegishi et al., Grokking Tickets)")
    p.add_argument("--quick", action="store_true", help="a small setting that checks the machinery end to end (minutes)")
    p.add_argument("--seeds", type=positive_int, default=None, help="number of seeds, 0 .. n-1 (default: 3, quick: 1)")
    p.add_argument("--only", default=None, help=f"comma-separated experiments (default all): {','.join(EXPERIMENTS)}")
    p.add_argument("--out", default="runs/repro", help="folder for the runs and the report (a rerun continues it)")
    p.add_argument("--executor", type=executor_name, default="auto",
                   help=f"where the runs train: {', '.join(EXECUTORS)}, or a Dask scheduler address (tcp://host:port)")
    p.add_argument("--workers", type=positive_int, default=None, help="threads or processes (default: every core)")
    p.add_argument("--critical-threshold", type=fraction, default=None,
                   help="test accuracy a ticket must exceed to count as generalising in the critical-ratio experiment "
                        "(default 0.95)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help="replace whatever --out holds")


def cmd_reproduce(args) -> int:
    start = time.perf_counter()
    if args.only is not None:
        select(args.only)  # an unknown name is refused before anything is written
    out = _prepare_out(args.out, _is_reproduction, args.overwrite)
    result = reproduce_tickets_paper(out, quick=args.quick, seeds=args.seeds, only=args.only, executor=args.executor,
                                     workers=args.workers, progress=not args.no_progress,
                                     critical_threshold=args.critical_threshold)
    report = result.report
    if report.get("note"):
        print(report["note"])
    for claim in report["claims"]:
        print(verdict_line(claim))
    print(f"runs: {result.trained} trained, {result.reused} reused, {result.failed} failed")
    print(f"report: {result.paths['markdown'].resolve()} (also {REPRO_REPORT_JSON}, {REPRO_REPORT_HTML}) "
          f"({time.perf_counter() - start:.0f} s)")
    return 0


def _fmt(x) -> str:
    return "None" if x is None else f"{x:.2f}"


# ------------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="grokinterp", description="Mechanistic interpretability of grokking on modular arithmetic.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _train_parser(sub)
    _demo_parser(sub)
    _analyze_parser(sub)
    _ticket_parsers(sub)
    _reproduce_parser(sub)
    return parser


COMMANDS = {
    "train": cmd_train,
    "demo": cmd_demo,
    "analyze": cmd_analyze,
    "ticket": cmd_ticket,
    "sweep": cmd_sweep,
    "controls": cmd_controls,
    "critical": cmd_critical,
    "edge-popup": cmd_edge_popup,
    "reproduce": cmd_reproduce,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), "")
    name = f"grokinterp {command}".strip()
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except GrokinterpError as e:
        print(f"{name}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if command in ("train", "edge-popup"):
            hint = "rerun the same command with --resume to continue from the last checkpoint"
        elif command == "analyze":
            hint = "nothing was written"
        else:
            hint = "rerun the same command to continue: finished runs are kept and the interrupted one resumes"
        print(f"{name}: interrupted; {hint}", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"{name}: error: {e.strerror or e}{f': {e.filename}' if getattr(e, 'filename', None) else ''}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
