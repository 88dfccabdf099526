"""The papers' set-ups of the tasks on vectors, as plain data (Minegishi et al., "Grokking Tickets",
App. B, and their official code's configuration files).

Each :class:`Preset` holds three JSON-able dicts, ready for the builders of the layers above:
``task`` for :func:`grokinterp.tasks.task_from_dict`, ``model`` for
:func:`grokinterp.models.config_from_dict`, ``train`` for ``grokinterp.TrainConfig(**train)``;
``needs`` names task fields the user must supply (the MNIST file's ``path``), and ``sources`` says
where each value comes from:

* ``"paper"``: stated in the paper (App. B);
* ``"code"``: read from the official code's configuration (the ``transfer`` branch's
  ``config_polynominal.py`` and ``config_mnist.py``);
* ``"grokinterp"``: the paper and the code do not fix it (or the set-up is not in the paper at
  all, as for sparse parity); grokinterp's declared choice.

Fields not listed in ``sources`` keep the builders' defaults (seeds 0, AdamW betas (0.9, 0.98), no
warm-up), which are grokinterp's. Nothing here imports the models or the trainer: this module sits
in the task layer and holds data only (a ``reproduce`` command builds the objects).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from ..errors import GrokinterpError

__all__ = ["PAPER_PRESETS", "Preset"]


@dataclass(frozen=True)
class Preset:
    """One set-up: ``task``, ``model`` and ``train`` dicts, the task fields it ``needs`` from the
    user, the ``sources`` of its values (``"task.d"``-style keys) and a one-line ``description``."""

    name: str
    description: str
    task: Mapping
    model: Mapping
    train: Mapping
    sources: Mapping[str, str]
    needs: tuple[str, ...] = field(default=())

    def task_dict(self, **given) -> dict:
        """The task dict with the fields it ``needs`` filled in (``path=...`` for MNIST)."""
        missing = [n for n in self.needs if n not in given]
        if missing:
            raise GrokinterpError(f"preset {self.name!r} needs {missing} (e.g. path= to a local MNIST file)")
        return {**dict(self.task), **given}


def _frozen(d: dict) -> Mapping:
    return MappingProxyType(d)


_REGRESSION = Preset(
    name="tickets_polynomial_regression",
    description="y = (x·β)²/2 on x ~ N(0, I/40): MLP 40→48→500→1, AdamW lr 1e-2, wd 1, batch 100, 10k epochs",
    task=_frozen({"kind": "polynomial_regression", "d": 40, "n_train": 1000, "n_test": 1000}),
    model=_frozen({"kind": "vector_mlp", "d_in": 40, "widths": [48, 500], "d_out": 1, "act": "relu", "bias": True,
                   "init_scale": 1.0, "seed": 0}),
    train=_frozen({"epochs": 10_000, "lr": 1e-2, "weight_decay": 1.0, "batch_size": 100, "eval_every": 100,
                   "checkpoint_every": 200}),
    sources=_frozen({
        "task.d": "paper", "task.n_train": "grokinterp", "task.n_test": "grokinterp", "task.tolerance": "grokinterp",
        "model.widths": "paper", "model.act": "code", "model.bias": "grokinterp", "model.init_scale": "code",
        "train.epochs": "code", "train.lr": "code", "train.weight_decay": "code", "train.batch_size": "code",
        "train.checkpoint_every": "code", "train.eval_every": "grokinterp",
    }),
)

_MNIST = Preset(
    name="tickets_mnist",
    description="MNIST, 1000 training images, MSE on one-hot: 4-layer MLP of width 200, init ×8, AdamW lr 1e-3, wd 0.1, "
                "batch 1000, 100k epochs",
    task=_frozen({"kind": "image_classification", "source": "mnist", "n_train": 1000}),
    model=_frozen({"kind": "vector_mlp", "d_in": 784, "widths": [200, 200, 200], "d_out": 10, "act": "relu",
                   "bias": True, "init_scale": 8.0, "seed": 0}),
    train=_frozen({"epochs": 100_000, "lr": 1e-3, "weight_decay": 0.1, "batch_size": 1000, "eval_every": 100,
                   "checkpoint_every": 1000}),
    sources=_frozen({
        "task.n_train": "paper", "task.n_test": "grokinterp", "model.widths": "paper", "model.act": "code",
        "model.bias": "grokinterp", "model.init_scale": "code", "train.epochs": "code", "train.lr": "code",
        "train.weight_decay": "code", "train.batch_size": "code", "train.checkpoint_every": "code",
        "train.eval_every": "grokinterp",
    }),
    needs=("path",),
)

_DIGITS = Preset(
    name="tickets_digits",
    description="the MNIST set-up on scikit-learn's bundled 8×8 digits (64 inputs, 1000 of 1797 images to train): "
                "no download needed",
    task=_frozen({"kind": "image_classification", "source": "digits", "n_train": 1000}),
    model=_frozen({**_MNIST.model, "d_in": 64}),
    train=_MNIST.train,
    sources=_frozen({**_MNIST.sources, "task.source": "grokinterp", "model.d_in": "grokinterp"}),
)

_PARITY = Preset(
    name="sparse_parity",
    description="(n, k) = (40, 3) sparse parity, ±1 inputs: MLP 40→1000→2, AdamW lr 3e-3, wd 1, batches of 32, "
                "1000 epochs (the paper gives no set-up: all grokinterp's)",
    task=_frozen({"kind": "sparse_parity", "n_bits": 40, "k": 3, "n_train": 1000, "n_test": 1000, "encoding": "pm1"}),
    model=_frozen({"kind": "vector_mlp", "d_in": 40, "widths": [1000], "d_out": 2, "act": "relu", "bias": True,
                   "init_scale": 1.0, "seed": 0}),
    train=_frozen({"epochs": 1000, "lr": 3e-3, "weight_decay": 1.0, "batch_size": 32, "eval_every": 10,
                   "checkpoint_every": 100}),
    sources=_frozen({
        key: "grokinterp" for key in (
            "task.n_bits", "task.k", "task.n_train", "task.n_test", "task.encoding", "model.widths", "model.act",
            "model.bias", "model.init_scale", "train.epochs", "train.lr", "train.weight_decay", "train.batch_size",
            "train.eval_every", "train.checkpoint_every",
        )
    }),
)

#: The set-ups by name.
PAPER_PRESETS: Mapping[str, Preset] = MappingProxyType({p.name: p for p in (_REGRESSION, _MNIST, _DIGITS, _PARITY)})
