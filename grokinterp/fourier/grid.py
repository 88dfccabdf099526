"""One model on its task's grid, with the intermediates the analyses share computed once:
:class:`GridAnalysis`.

Most analyses of a checkpoint read the same two things: the forward pass over every pair
``(a, b)`` (logits, neuron activations, final residual, attention) and the neuron Fourier
decomposition (each neuron's share of variance per frequency, :class:`NeuronFrequencies`). A
:class:`GridAnalysis` is built from a model (or its :class:`~grokinterp.models.ModelWeights`) and
the task, holds the basis and the task's pairs, and computes each of those on first use and keeps
it; ``analyze`` builds one per checkpoint and passes it to every section, and the analysis
functions that read the grid accept one in place of a model (:func:`as_grid`). Nothing is kept
anywhere else: a new :class:`GridAnalysis` (or a plain model) computes afresh.
"""

from __future__ import annotations

from functools import cached_property

from jaxtyping import Float
from torch import Tensor

from .basis import BasisKind, FourierBasis, fft1d
from .pairs import ObservedPairs, observed_pairs
from .spectra import (
    CLUSTER_THRESHOLD,
    KEY_FREQUENCY_THRESHOLD,
    NeuronFrequencies,
    frequency_scores,
    neuron_frequencies_in,
    resolve_basis,
    select_frequencies,
)
from ..errors import GrokinterpError
from ..models.weights import Activations, ModelLike, ModelWeights, as_weights, check_task, grid_activations
from ..tasks import ModularArithmetic

__all__ = ["GridAnalysis", "as_grid"]

METHODS = ("logit", "embed", "neuron")


class GridAnalysis:
    """A model's weights, its task (or ``None``: the full grid) and the Fourier basis of the task,
    with memoised, lazily computed intermediates:

    * :attr:`activations`: :func:`~grokinterp.models.grid_activations` over all p² pairs, a-major
      (row ``a p + b``);
    * :meth:`neuron_frequencies`: the decomposition of each neuron's centred activation over the
      task's pairs into frequencies, ``fraction_i[k] = ‖P_k A_i‖² / ‖A_i‖²`` with ``P_k`` the
      projection on frequency k's 2D terms (const·k, k·const, k·k), per threshold
      (:func:`~grokinterp.fourier.spectra.neuron_frequencies`);
    * :attr:`observed`: the task's pairs in the basis's group coordinates;
    * :attr:`embed_coeffs` ``F W_E`` per embedding dimension and :attr:`logit_coeffs` ``W_L F^T``.

    Each value is the one the uncached function gives (the same code on the same tensors).
    """

    def __init__(
        self, model: ModelLike, task: ModularArithmetic | None = None, basis: BasisKind | FourierBasis | None = None,
        *, activations: Activations | None = None,
    ):
        """``activations``: the grid forward of these weights when it is already at hand (what
        :meth:`for_task` passes on); otherwise it is computed on first use."""
        self.weights: ModelWeights = as_weights(model)
        self.task: ModularArithmetic | None = check_task(self.weights, task)
        self.basis: FourierBasis = resolve_basis(self.weights, self.task, basis)
        if activations is not None and activations.logits.shape[0] != self.p * self.p:
            raise GrokinterpError(
                f"activations must hold the {self.p * self.p} grid rows of p={self.p}, got {activations.logits.shape[0]}"
            )
        self._activations = activations
        self._neurons: dict[float, NeuronFrequencies] = {}

    def __repr__(self) -> str:
        task = "no task" if self.task is None else f"{self.task.op} over {self.task.pairs!r}"
        return f"GridAnalysis({self.weights.kind}, p={self.p}, {task}, {self.basis.kind} basis)"

    @property
    def p(self) -> int:
        return self.weights.p

    @property
    def activations(self) -> Activations:
        """The forward pass over every pair (computed on first use)."""
        if self._activations is None:
            self._activations = grid_activations(self.weights)
        return self._activations

    @property
    def logits(self) -> Float[Tensor, "p_sq p"]:
        return self.activations.logits

    @cached_property
    def observed(self) -> ObservedPairs:
        """The task's pairs (all p² without a task) in the basis's group grid."""
        return observed_pairs(self.basis, self.task)

    @cached_property
    def embed_coeffs(self) -> Float[Tensor, "d n"]:
        """``fft1d(W_E^T)``: the Fourier coefficients of each embedding dimension over the tokens (float64)."""
        return fft1d(self.weights.W_E.T.double(), self.basis)

    @cached_property
    def logit_coeffs(self) -> Float[Tensor, "d_mlp n"]:
        """``fft1d(W_L)``: each neuron's row of ``W_L = W_out W_U`` in the Fourier basis over the answers (float64)."""
        return fft1d(self.weights.W_L.double(), self.basis)

    def neuron_frequencies(self, threshold: float = CLUSTER_THRESHOLD) -> NeuronFrequencies:
        """Neuron clusters by frequency over the task's pairs (as
        :func:`~grokinterp.fourier.spectra.neuron_frequencies`), computed once per threshold."""
        if not 0.0 < float(threshold) <= 1.0:
            raise GrokinterpError(f"threshold must lie in (0, 1], got {threshold!r}")
        key = float(threshold)
        if key not in self._neurons:
            self._neurons[key] = neuron_frequencies_in(self.weights, self.basis, key, self.activations.post, self.observed)
        return self._neurons[key]

    def frequency_scores(self, method: str) -> Float[Tensor, " f"]:
        """The per-frequency scores :meth:`key_frequencies` thresholds
        (:func:`~grokinterp.fourier.spectra.frequency_scores`)."""
        if method not in METHODS:
            raise GrokinterpError(f"method must be 'logit', 'embed' or 'neuron', got {method!r}")
        neurons = self.neuron_frequencies(CLUSTER_THRESHOLD) if method == "neuron" else None
        return frequency_scores(self.weights, self.basis, method, observed=self.observed, neurons=neurons)

    def key_frequencies(self, method: str = "logit", threshold: float = KEY_FREQUENCY_THRESHOLD) -> list[int]:
        """:func:`~grokinterp.fourier.spectra.key_frequencies` of the model on its task."""
        return select_frequencies(self.frequency_scores(method), threshold)

    def for_task(self, task: ModularArithmetic | None, basis: BasisKind | FourierBasis | None = None) -> "GridAnalysis":
        """This grid analysis for another task or basis: ``self`` when they are the ones it holds,
        else a new one that shares the forward pass (it depends on the weights only)."""
        same_task = task is None or task is self.task or (self.task is not None and _task_key(task) == _task_key(self.task))
        if same_task and (basis is None or _basis_key(resolve_basis(self.weights, self.task, basis)) == _basis_key(self.basis)):
            return self
        return GridAnalysis(self.weights, task if task is not None else self.task, basis, activations=self._activations)


def as_grid(
    model: ModelLike | GridAnalysis, task: ModularArithmetic | None = None, basis: BasisKind | FourierBasis | None = None
) -> GridAnalysis:
    """``model`` itself when it is a :class:`GridAnalysis` for ``task`` and ``basis`` (``None``: the
    one it holds), one sharing its forward pass for another task or basis, else a new one."""
    if isinstance(model, GridAnalysis):
        return model.for_task(task, basis)
    return GridAnalysis(model, task, basis)


def _task_key(task) -> tuple:
    return (type(task).__name__, repr(sorted(task.to_dict().items())))


def _basis_key(B: FourierBasis) -> tuple:
    return (B.kind, B.p)

