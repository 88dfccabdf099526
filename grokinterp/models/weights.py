"""The one seam between models and everything that reads them: :class:`ModelWeights`, and the one
forward pass of each model kind.

Analyses, pruners, the trainer and edge-popup all work on a :class:`ModelWeights`: the state-dict
tensors of a HookedMLP or a transformer plus its config. It is built from a live model
(:func:`as_weights`, detached, masked when a mask is given), from a model with some tensors replaced
(:func:`answer_logits` does this with the trainer's masked weights, keeping gradients), or straight
from a checkpoint's tensors (``ModelWeights(config, tensors)``), so progress measures over hundreds
of checkpoints never build a TransformerLens model.

Matrices come in ``x @ W`` orientation: ``W_E`` (p, d) without the ``=`` token (for a transformer
with ``diff_vocab``, the first operand's embedding; ``W_E_b`` is the second's), ``W_in`` (d, d_mlp),
``W_out`` (d_mlp, d), ``W_U`` (d, p), ``W_L = W_out W_U`` (d_mlp, p), the neuron→logit map
(Nanda et al. 2023). Transformer matrices are those of the last layer's MLP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Mapping, Optional, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float, Int
from torch import Tensor

from ..errors import GrokinterpError, MaskError
from ..tasks import is_task, require_modular
from .config import Model, ModelConfig, model_config, named_weights
from .gather import gather_rows
from .mlp import ACTIVATIONS, MLPConfig
from .transformer import TransformerConfig, apply_attention_rate, transformer_tokens
from .vector_mlp import VectorMLPConfig, vector_mlp_forward, vector_mlp_shapes

__all__ = [
    "Activations",
    "ModelLike",
    "ModelWeights",
    "answer_logits",
    "as_weights",
    "check_task",
    "fit_task",
    "grid_activations",
    "grid_pairs",
    "neuron_input_weights",
    "stacked_mlp_logits",
]

InputPath = Literal["ov", "embed"]


@dataclass(frozen=True, eq=False)
class ModelWeights:
    """A model's config and its parameters by state-dict name (``W_E``, ``W_in`` ... for the MLP;
    ``embed.weight``, ``blocks.0.attn.v.weight`` ... for the transformer; ``blocks.0.W_in``,
    ``W_U`` ... for the vector MLP, which has no tokens, modulus or Fourier structure: the
    modular-only members refuse it)."""

    config: ModelConfig
    tensors: Mapping[str, Tensor]

    def __post_init__(self) -> None:
        if not isinstance(self.config, (MLPConfig, TransformerConfig, VectorMLPConfig)):
            raise GrokinterpError(
                f"expected an MLPConfig, TransformerConfig or VectorMLPConfig, got {type(self.config).__name__}"
            )
        missing = [n for n in self._required() if n not in self.tensors]
        if missing:
            raise GrokinterpError(
                f"weights lack {missing} needed by a {self.kind} with this config; got names {sorted(self.tensors)[:8]}..."
            )
        for name, shape in self._shapes().items():
            got = tuple(self.tensors[name].shape)
            if got != shape:
                raise GrokinterpError(f"weight {name!r} has shape {got}, the config expects {shape}")

    # -------------------------------------------------------------------- names and shapes
    @property
    def kind(self) -> Literal["mlp", "transformer", "vector_mlp"]:
        if isinstance(self.config, VectorMLPConfig):
            return "vector_mlp"
        return "mlp" if isinstance(self.config, MLPConfig) else "transformer"

    @property
    def p(self) -> int:
        self._need_modular("a modulus p")
        return self.config.p

    @property
    def d_mlp(self) -> int:
        """Width of the last hidden layer."""
        if self.kind == "vector_mlp":
            return self.config.widths[-1]
        return self.config.d_hidden if self.kind == "mlp" else self.config.d_mlp

    def _required(self) -> list[str]:
        if self.kind == "vector_mlp":
            return list(vector_mlp_shapes(self.config))
        if self.kind == "mlp":
            return ["W_E", "W_in", "W_out", "W_U"]
        names = ["embed.weight", "pos_embed.weight", "unembed.weight"]
        for layer in range(self.config.n_layers):
            names += [f"blocks.{layer}.attn.{x}.weight" for x in "qkvo"]
            names += [f"blocks.{layer}.mlp.in.weight", f"blocks.{layer}.mlp.out.weight"]
        return names

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        c = self.config
        if self.kind == "vector_mlp":
            return vector_mlp_shapes(c)
        if self.kind == "mlp":
            return {
                "W_E": (c.p, c.d_embed),
                "W_in": (c.d_embed, c.d_hidden),
                "W_out": (c.d_hidden, c.d_embed),
                "W_U": (c.d_embed, c.p),
            }
        hd = c.n_heads * c.d_head
        shapes = {"embed.weight": (c.d_vocab, c.d_model), "unembed.weight": (c.p, c.d_model)}
        for layer in range(c.n_layers):
            b = f"blocks.{layer}."
            shapes.update(
                {
                    b + "attn.q.weight": (hd, c.d_model),
                    b + "attn.k.weight": (hd, c.d_model),
                    b + "attn.v.weight": (hd, c.d_model),
                    b + "attn.o.weight": (c.d_model, hd),
                    b + "mlp.in.weight": (c.d_mlp, c.d_model),
                    b + "mlp.out.weight": (c.d_model, c.d_mlp),
                }
            )
        return shapes

    @property
    def embed_name(self) -> str:
        """Name of the token-embedding tensor (rows are tokens)."""
        self._need_modular("a token embedding")
        return "W_E" if self.kind == "mlp" else "embed.weight"

    @property
    def neuron_names(self) -> tuple[str, str]:
        """Names of the last MLP layer's input and output matrices (as stored)."""
        self._need_modular("neuron input and output matrices")
        if self.kind == "mlp":
            return "W_in", "W_out"
        last = f"blocks.{self.config.n_layers - 1}.mlp."
        return last + "in.weight", last + "out.weight"

    # -------------------------------------------------------------------- matrices (x @ W)
    @cached_property
    def W_E(self) -> Float[Tensor, "p d"]:
        """Embedding of the first operand's p tokens (the shared embedding unless ``diff_vocab``)."""
        self._need_modular("W_E")
        return self.tensors["W_E"] if self.kind == "mlp" else self.tensors["embed.weight"][: self.p]

    @cached_property
    def W_E_b(self) -> Float[Tensor, "p d"]:
        """Embedding of the second operand's p tokens: rows ``p .. 2p-1`` under ``diff_vocab``, else
        :attr:`W_E`."""
        if self.kind == "transformer" and self.config.diff_vocab:
            return self.tensors["embed.weight"][self.p : 2 * self.p]
        return self.W_E

    @cached_property
    def W_in(self) -> Float[Tensor, "d d_mlp"]:
        self._need_modular("W_in")
        if self.kind == "mlp":
            return self.tensors["W_in"]
        return self.tensors[f"blocks.{self.config.n_layers - 1}.mlp.in.weight"].T

    @cached_property
    def W_out(self) -> Float[Tensor, "d_mlp d"]:
        self._need_modular("W_out")
        if self.kind == "mlp":
            return self.tensors["W_out"]
        return self.tensors[f"blocks.{self.config.n_layers - 1}.mlp.out.weight"].T

    @cached_property
    def W_U(self) -> Float[Tensor, "d p"]:
        """The unembedding (for a vector MLP: its readout, (h_last, d_out))."""
        return self.tensors["W_U"] if self.kind in ("mlp", "vector_mlp") else self.tensors["unembed.weight"].T

    @cached_property
    def W_L(self) -> Float[Tensor, "d_mlp p"]:
        """Neuron→logit map ``W_out W_U`` (Nanda et al. 2023, Sec. 4)."""
        self._need_modular("W_L")
        return self.W_out @ self.W_U

    def W_V(self, layer: int = 0) -> Float[Tensor, "heads d d_head"]:
        self._need_transformer("W_V")
        v = self.tensors[f"blocks.{layer}.attn.v.weight"]
        return rearrange(v, "(h e) d -> h d e", h=self.config.n_heads)

    def W_O(self, layer: int = 0) -> Float[Tensor, "heads d_head d"]:
        self._need_transformer("W_O")
        o = self.tensors[f"blocks.{layer}.attn.o.weight"]
        return rearrange(o, "d (h e) -> h e d", h=self.config.n_heads)

    def _need_transformer(self, what: str) -> None:
        if self.kind != "transformer":
            raise GrokinterpError(f"{what} exists only for transformers; this is an {self.kind.replace('_', ' ')}")

    def _need_modular(self, what: str) -> None:
        if self.kind == "vector_mlp":
            raise GrokinterpError(
                f"{what} belongs to modular-arithmetic models (the tickets MLP or a transformer); this is a vector MLP"
            )

    # -------------------------------------------------------------------- forward
    def check_inputs(self, inputs) -> Tensor:
        """``inputs`` validated (pairs in ``[0, p)``, or vectors of ``d_in``) and on the weights'
        device: what :meth:`forward` and :meth:`logits` take with ``checked=True`` (the trainer
        checks its split once instead of every step)."""
        if self.kind == "vector_mlp":
            return self._vectors(inputs)
        return _check_pairs(inputs, self.p).to(self.W_E.device)

    def forward(self, inputs: Int[Tensor, "N 2"], *, checked: bool = False) -> "Activations":
        """Logits, neurons, final residual and attention at the answer position for pairs
        ``(a, b)``; differentiable in the tensors (see :func:`grid_activations` for analyses).
        A vector MLP takes its input vectors and gives its outputs, last hidden activations (as
        ``post`` and ``resid``) and no attention. ``checked``: ``inputs`` come from
        :meth:`check_inputs`."""
        if not checked:
            inputs = self.check_inputs(inputs)
        if self.kind == "vector_mlp":
            out, post = vector_mlp_forward(self.config, self.tensors, inputs)
            return Activations(out, post, post, None)
        return _mlp_forward(self, inputs) if self.kind == "mlp" else _transformer_forward(self, inputs)

    def logits(self, inputs: Int[Tensor, "N 2"], *, checked: bool = False) -> Float[Tensor, "N p"]:
        """Logits over the p answers for pairs ``(a, b)``: the training and evaluation path.

        MLP: ``act(P[a] + P[b]) W_L`` with ``P = W_E W_in`` and ``W_L = W_out W_U``, the tickets
        paper's ``act((E_a + E_b) W_in) W_out W_U`` re-associated so that the (N, d_embed)
        activations are never formed (O(N d_mlp p) instead of O(N d_embed (d_mlp + p)) per step).
        Transformer: :meth:`forward`'s logits. Vector MLP: its outputs for input vectors
        (:func:`~grokinterp.models.vector_mlp.vector_mlp_forward`). ``checked`` as for :meth:`forward`."""
        if self.kind != "mlp":
            return self.forward(inputs, checked=checked).logits
        if not checked:
            inputs = self.check_inputs(inputs)
        P = self.W_E @ self.W_in
        return ACTIVATIONS[self.config.act](gather_rows(P, inputs[:, 0]) + gather_rows(P, inputs[:, 1])) @ self.W_L

    def _vectors(self, inputs) -> Float[Tensor, "N d_in"]:
        inputs = torch.as_tensor(inputs)
        d_in = self.config.d_in
        if inputs.ndim != 2 or inputs.shape[1] != d_in:
            raise GrokinterpError(f"a vector MLP takes inputs of shape (N, {d_in}), got {tuple(inputs.shape)}")
        W = self.tensors["W_U"]
        return inputs.to(W.device, W.dtype)

    def ones_logits(self) -> Tensor:
        """The outputs for one all-ones input (SynFlow's data-free pass): a vector MLP reads the
        all-ones vector; a token model reads any pair with every embedding row replaced by the
        embedding's column sum (the all-ones vector over the one-hot positions)."""
        if self.kind == "vector_mlp":
            return self.logits(torch.ones(1, self.config.d_in))
        w = dict(self.tensors)
        E = w[self.embed_name]
        w[self.embed_name] = E.sum(dim=0, keepdim=True).expand_as(E)
        return ModelWeights(self.config, w).logits(torch.zeros(1, 2, dtype=torch.long))

    def with_mask(self, mask: Mapping[str, Tensor] | None) -> "ModelWeights":
        """The weights with ``W * mask`` for every masked name (a mask of the model's parameters)."""
        if mask is None:
            return self
        if not isinstance(mask, Mapping):
            raise MaskError(f"a mask must be a dict of bool tensors named like the parameters, got {type(mask).__name__}")
        unknown = sorted(set(mask) - set(self.tensors))
        if unknown:
            raise MaskError(f"mask names {unknown} are not parameters of the model; expected names among {sorted(self.tensors)}")
        out = dict(self.tensors)
        for name, m in mask.items():
            if tuple(m.shape) != tuple(out[name].shape):
                raise MaskError(f"mask entry {name!r} has shape {tuple(m.shape)}, expected {tuple(out[name].shape)}")
            out[name] = out[name] * m.to(out[name].dtype)
        return ModelWeights(self.config, out)


ModelLike = Union[Model, ModelWeights]


def as_weights(model: ModelLike, mask: Mapping[str, Tensor] | None = None) -> ModelWeights:
    """A :class:`ModelWeights` for a HookedMLP, a transformer from ``make_transformer`` or an existing
    view; ``mask`` (bool tensors named like the parameters) multiplies the weights."""
    if isinstance(model, ModelWeights):
        return model.with_mask(mask)
    cfg = model_config(model)  # raises a GrokinterpError for anything else
    tensors = {n: p.detach() for n, p in named_weights(model).items()}
    return ModelWeights(cfg, tensors).with_mask(mask)


def answer_logits(
    model: Model, inputs: Int[Tensor, "batch 2"], weights: Mapping[str, Tensor] | None = None
) -> Float[Tensor, "batch p"]:
    """Logits over the p answers of a live model for pairs ``(a, b)`` (a vector MLP: its outputs for
    input vectors), differentiable in its parameters; ``weights`` replaces parameters by name (the
    trainer's masked weights ``W * m``).
    The hook-free path of training and evaluation (:meth:`ModelWeights.logits`); use the model's
    own ``run_with_hooks`` for interventions."""
    tensors = dict(named_weights(model))
    if weights:
        tensors.update(weights)
    return ModelWeights(model_config(model), tensors).logits(inputs)


def stacked_mlp_logits(
    act: str, tensors: Mapping[str, Float[Tensor, "n ..."]], inputs: Int[Tensor, "batch 2"]
) -> Float[Tensor, "n batch p"]:
    """The MLP training forward of :meth:`ModelWeights.logits` for ``n`` MLPs of one shape at once:
    ``tensors`` holds each weight stacked on a leading axis (``W_E`` (n, p, d) ...), and row ``i``
    of the result is ``act(P_i[a] + P_i[b]) W_L,i`` with ``P_i = W_E,i W_in,i``,
    ``W_L,i = W_out,i W_U,i``.

    The products are batched (``torch.bmm``) and the rows gathered (:func:`gather_rows`) from the
    copies' tables laid end to end (``P_i[a]`` is row ``i p + a``), as the single forward gathers. With one intra-op
    thread each copy's logits and gradients equal, bit for bit, those of the single-model forward
    (a CPU ``bmm`` runs one ``mm`` per copy); with more threads the batched kernel may split the work
    differently and round differently, so the batched loop runs with one thread."""
    P = torch.bmm(tensors["W_E"], tensors["W_in"])
    W_L = torch.bmm(tensors["W_out"], tensors["W_U"])
    n, p = P.shape[0], P.shape[1]
    table = rearrange(P, "n p h -> (n p) h")  # copy i's rows at i * p ...
    offsets = (torch.arange(n, device=table.device) * p)[:, None]
    inputs = inputs.to(table.device).long()
    pre = gather_rows(table, inputs[:, 0] + offsets) + gather_rows(table, inputs[:, 1] + offsets)
    return torch.bmm(ACTIVATIONS[act](pre), W_L)


def grid_pairs(p: int) -> Int[Tensor, "p_sq 2"]:
    """All p² pairs ``(a, b)``, a-major: row ``a * p + b`` is ``(a, b)``."""
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)


def _check_pairs(inputs, p: int) -> Tensor:
    inputs = torch.as_tensor(inputs)
    if inputs.ndim != 2 or inputs.shape[1] != 2:
        raise GrokinterpError(f"inputs must be pairs of shape (N, 2), got {tuple(inputs.shape)}")
    if inputs.is_floating_point():
        raise GrokinterpError(f"inputs must be integer token ids, got dtype {inputs.dtype}")
    if inputs.numel() and (inputs.min() < 0 or inputs.max() >= p):
        raise GrokinterpError(f"inputs must lie in [0, {p})")
    return inputs.long()


def check_task(model: "ModelLike", task):
    """``task`` if it fits a modular analysis of the model (a modular task with the model's p;
    ``None`` passes through), else an error naming both moduli, or saying that the task (or
    model) is not modular arithmetic. The one place this check is made."""
    if task is None:
        return None
    task = require_modular(task)
    cfg = model.config if isinstance(model, ModelWeights) else model_config(model)
    if isinstance(cfg, VectorMLPConfig):
        raise GrokinterpError("this analysis needs a modular-arithmetic model (the tickets MLP or a transformer); got a vector MLP")
    p = cfg.p
    if task.p != p:
        raise GrokinterpError(f"the model is built for p={p} but the task has p={task.p}")
    return task


def fit_task(model: "ModelLike", task):
    """``task`` if the model can be trained and evaluated on it, else an error saying what does not
    fit: a modular model needs a modular task with its p (:func:`check_task`); a vector MLP a task
    on vectors with its input and output widths (``task.d_in``, ``task.d_out``). What the trainer,
    the batched trainer and edge-popup check; they never ask the kind themselves."""
    w = model if isinstance(model, ModelWeights) else None
    cfg = w.config if w is not None else model_config(model)
    if not isinstance(cfg, VectorMLPConfig):
        return check_task(model, task)
    if not is_task(task):
        raise GrokinterpError(f"task must be a grokinterp task, got {type(task).__name__}")
    d_in, d_out = getattr(task, "d_in", None), getattr(task, "d_out", None)
    if not isinstance(d_in, int) or not isinstance(d_out, int):
        raise GrokinterpError(
            f"a vector MLP trains on a task of vectors (with d_in and d_out); got a {getattr(task, 'kind', '?')} task"
        )
    if (d_in, d_out) != (cfg.d_in, cfg.d_out):
        raise GrokinterpError(
            f"the vector MLP maps {cfg.d_in} inputs to {cfg.d_out} outputs, the {task.kind} task needs "
            f"{d_in} inputs and {d_out} outputs; build the model with d_in={d_in}, d_out={d_out}"
        )
    return task


# ----------------------------------------------------------------------------- effective weights
def neuron_input_weights(model: ModelLike, path: InputPath | None = None) -> Float[Tensor, "p d_mlp"]:
    """How much each token feeds each neuron, as a (p, d_mlp) matrix.

    MLP: ``W_E W_in`` (both operands share it). Transformer, ``path="ov"`` (default): the effective
    ``W_E (Σ_h W_V^h W_O^h) W_in`` — the OV circuits summed over heads, i.e. each head's output if it
    attended fully to the token (Nanda et al. 2023, Sec. 4); one-layer transformers only.
    ``path="embed"``: ``W_E W_in``, the direct path (it carries an operand only when the answer is read
    at the ``b`` position, i.e. without the ``=`` token).
    """
    w = as_weights(model)
    w._need_modular("neuron input weights over tokens")
    if w.kind == "mlp":
        if path not in (None, "embed"):
            raise GrokinterpError(f"an MLP has only the embedding path; got path={path!r}")
        return w.W_E @ w.W_in
    path = path or "ov"
    if path == "embed":
        return w.W_E @ w.W_in
    if path != "ov":
        raise GrokinterpError(f"path must be 'ov' or 'embed', got {path!r}")
    if w.config.n_layers != 1:
        raise GrokinterpError(
            f"the effective OV input weights are defined for one-layer transformers; this one has "
            f"{w.config.n_layers} layers (use path='embed' or the activations)"
        )
    ov = (w.W_V(0) @ w.W_O(0)).sum(0)
    return w.W_E @ ov @ w.W_in


# ----------------------------------------------------------------------------------- forward
@dataclass(frozen=True)
class Activations:
    """What one forward pass over a batch of pairs gives the analyses (answer position only).

    ``logits`` (N, p); ``post`` (N, d_mlp) last-layer neuron activations; ``resid`` (N, d) the final
    residual stream (for the MLP, the MLP output ``post W_out``); ``pattern`` (N, layers, heads,
    n_ctx) attention from the answer position (``None`` for the MLP).
    """

    logits: Float[Tensor, "N p"]
    post: Float[Tensor, "N d_mlp"]
    resid: Float[Tensor, "N d"]
    pattern: Optional[Float[Tensor, "N layers heads n_ctx"]]


#: Rows per forward pass of :func:`grid_activations`: a larger input is run in blocks of this many
#: pairs, so that the intermediate tensors of the forward (keys, values, pre-activations of every
#: position) stay bounded while the outputs are kept whole.
GRID_BLOCK = 4096


@torch.no_grad()
def grid_activations(model: ModelLike, inputs: Int[Tensor, "N 2"] | None = None, block: int = GRID_BLOCK) -> Activations:
    """Forward pass returning logits, neurons, final residual and attention at the answer position.

    ``inputs`` defaults to the full grid, a-major (row ``a*p + b`` is ``(a, b)``). Same function as
    the model's forward (checked in the tests); the first layer's queries, keys and values are read
    from per-(position, token) tables, since a first-layer input depends on one token only. Every
    output row depends on its own pair only, so the pairs are run ``block`` at a time and the
    outputs concatenated (peak memory: the outputs plus one block's intermediates).
    """
    w = as_weights(model)
    inputs = grid_pairs(w.p) if inputs is None else _check_pairs(inputs, w.p)
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise GrokinterpError(f"block must be a positive number of pairs, got {block!r}")
    if inputs.shape[0] <= block:
        return w.forward(inputs)
    chunks = inputs.split(block)
    first = w.forward(chunks[0])
    fields = ("logits", "post", "resid", "pattern")
    out = {}
    for name in fields:  # the outputs are allocated once and filled block by block
        t = getattr(first, name)
        out[name] = None if t is None else t.new_empty((inputs.shape[0], *t.shape[1:]))
    start = 0
    for i, chunk in enumerate(chunks):
        acts = first if i == 0 else w.forward(chunk)
        for name in fields:
            if out[name] is not None:
                out[name][start : start + len(chunk)] = getattr(acts, name)
        start += len(chunk)
    return Activations(**out)


def _mlp_forward(w: ModelWeights, inputs: Tensor) -> Activations:
    table = w.W_E @ w.W_in  # (p, h): (E_a + E_b) W_in = table[a] + table[b]
    pre = table[inputs[:, 0]] + table[inputs[:, 1]]
    post = ACTIVATIONS[w.config.act](pre)
    resid = post @ w.W_out
    return Activations(resid @ w.W_U, post, resid, None)


def _transformer_forward(w: ModelWeights, inputs: Tensor) -> Activations:
    """The transformer's forward, answer position only in the last layer.

    Per layer: ``q, k, v = x W_Q + b_Q, ...``; pattern ``A = r * softmax(q k^T / sqrt(d_head)) + (1 - r)``
    (rate r, Zhong et al. 2023; causal models mask keys after the query, bidirectional ones none);
    ``x += (A v) W_O + b_O``; ``x += act(x W_in + b_in) W_out + b_out``; logits ``x W_U`` at the last
    position. No LayerNorm."""
    cfg: TransformerConfig = w.config
    T = w.tensors
    act = ACTIVATIONS[cfg.act]
    tokens = transformer_tokens(cfg, inputs)
    n, seq = tokens.shape
    emb, pos = T["embed.weight"], T["pos_embed.weight"][:seq]
    # each layer before the last reads every position; the last one only the answer position
    heads = cfg.n_heads

    def first_layer(name: str, positions: range) -> Tensor:
        # (position, token) table of x W for x = embed[token] + pos[position], gathered per input
        weight, bias = T[f"blocks.0.attn.{name}.weight"], T.get(f"blocks.0.attn.{name}.bias")
        out = [gather_rows(F.linear(emb + pos[s], weight, bias), tokens[:, s]) for s in positions]
        return torch.stack(out, dim=1)

    x = None  # full residual (n, seq, d), only built when a later layer needs it
    patterns = []
    for layer in range(cfg.n_layers):
        last = layer == cfg.n_layers - 1
        pre = f"blocks.{layer}."
        lin = lambda name, inp: F.linear(inp, T[pre + name + ".weight"], T.get(pre + name + ".bias"))  # noqa: E731
        if layer == 0:
            x_q = (gather_rows(emb, tokens[:, -1]) + pos[-1])[:, None] if last else gather_rows(emb, tokens) + pos
            q = first_layer("q", range(seq - 1, seq) if last else range(seq))
            k, v = first_layer("k", range(seq)), first_layer("v", range(seq))
        else:
            x_q = x[:, -1:] if last else x
            q, k, v = lin("attn.q", x_q), lin("attn.k", x), lin("attn.v", x)
        # a context of 2-3 positions: products summed over broadcast axes, in the (n, position,
        # head, e) layout of the projections, cost less than batched matrix products of 1x3 blocks
        n_q = q.shape[1]
        q = rearrange(q, "n q (h e) -> n q 1 h e", h=heads)
        k, v = (rearrange(t, "n k (h e) -> n 1 k h e", h=heads) for t in (k, v))
        scores = rearrange((q * k).sum(-1), "n q k h -> n h q k") / math.sqrt(cfg.d_head)
        if cfg.causal and not last:  # the answer position (the last query) reads every key anyway
            later = torch.ones(seq, seq, dtype=torch.bool, device=scores.device).triu(1)
            scores = scores.masked_fill(later, float("-inf"))
        pattern = apply_attention_rate(scores.softmax(-1), cfg.attn_rate, cfg.causal)
        patterns.append(pattern[:, :, -1])
        z = (rearrange(pattern, "n h q k -> n q k h 1") * v).sum(2).reshape(n, n_q, -1)  # Σ_k A[q, k] v_k, per head
        x_mid = x_q + lin("attn.o", z)
        post = act(lin("mlp.in", x_mid))
        x = x_mid + lin("mlp.out", post)
    resid = x[:, -1]
    logits = F.linear(resid, T["unembed.weight"])
    return Activations(logits, post[:, -1], resid, torch.stack(patterns, dim=1))
