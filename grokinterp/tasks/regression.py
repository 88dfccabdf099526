"""Polynomial regression (Minegishi et al., "Grokking Tickets", App. B, after their official code):
a quadratic teacher on Gaussian inputs,

    y = (x · β)² / 2,    x ~ N(0, I / d),    β ~ N(0, I),    d = 40 by default,

so ``x · β`` is about N(0, 1), ``E[y] ≈ 1/2`` and ``Var[y] ≈ 1/2``. The loss is the mean squared
error; since a regression has no argmax, an example counts as correct when its squared error is
below ``tolerance`` times the variance of the train labels (:attr:`PolynomialRegression.squared_error_bound`),
which is what t_mem / t_gen are read off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from ..errors import GrokinterpError
from .protocol import Split, check_split
from .vector import check_seeds, check_sizes, check_task_fields, check_tolerance, derived_seed, split_part

__all__ = ["PolynomialRegression"]


@dataclass(frozen=True)
class PolynomialRegression:
    """``y = (x · β)² / 2`` with ``x ~ N(0, I/d)`` and a seeded teacher ``β ~ N(0, I)``.

    Args:
        d: input dimension (the paper: 40).
        n_train / n_test: examples in each split (drawn independently, so the splits share none
            almost surely).
        seed: seed of the inputs (the data split): the train inputs are the first ``n_train`` rows
            drawn from a generator seeded with ``derived_seed(seed, "inputs")``, the test inputs the
            next ``n_test``.
        beta_seed: seed of the teacher ``β`` (so the data can be redrawn for one fixed teacher).
        tolerance: an example is correct when ``(ŷ - y)² < tolerance · Var(train labels)``
            (default 0.1: an error below about a third of the labels' standard deviation).

    Inputs are float32 ``(n, d)``; labels float32 ``(n,)``, computed in float64 from the stored
    float32 inputs. A model for this task has ``d_in = d`` and ``d_out = 1``.
    """

    kind: ClassVar[str] = "polynomial_regression"
    loss: ClassVar[str] = "mse"
    accuracy_rule: ClassVar[str] = "squared_error"

    d: int = 40
    n_train: int = 1000
    n_test: int = 1000
    seed: int = 0
    beta_seed: int = 0
    tolerance: float = 0.1

    def __post_init__(self) -> None:
        name = "PolynomialRegression"
        if isinstance(self.d, bool) or not isinstance(self.d, int) or self.d < 1:
            raise GrokinterpError(f"{name}.d must be a whole number >= 1 (the input dimension), got {self.d!r}")
        check_sizes(name, self.n_train, self.n_test)
        check_seeds(name, seed=self.seed, beta_seed=self.beta_seed)
        check_tolerance(f"{name}.tolerance", self.tolerance)

    @property
    def d_in(self) -> int:
        return self.d

    @property
    def d_out(self) -> int:
        return 1

    @cached_property
    def beta(self) -> Float[Tensor, " d"]:
        """The teacher ``β ~ N(0, I)`` (float32), from ``derived_seed(beta_seed, "beta")``."""
        g = torch.Generator().manual_seed(derived_seed(self.beta_seed, "beta"))
        return torch.randn(self.d, generator=g, dtype=torch.float32)

    @cached_property
    def _inputs(self) -> Float[Tensor, "n d"]:
        g = torch.Generator().manual_seed(derived_seed(self.seed, "inputs"))
        x = torch.randn(self.n_train + self.n_test, self.d, generator=g, dtype=torch.float32)
        return x / self.d**0.5

    def label(self, inputs: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
        """``(x · β)² / 2`` per row, in float64, returned as float32."""
        inputs = torch.as_tensor(inputs)
        if inputs.ndim != 2 or inputs.shape[1] != self.d:
            raise GrokinterpError(f"inputs must have shape (n, {self.d}), got {tuple(inputs.shape)}")
        z = inputs.double() @ self.beta.double()
        return (z.square() / 2).to(torch.float32)

    @cached_property
    def _labels(self) -> Float[Tensor, " n"]:
        return self.label(self._inputs)

    def inputs(self, split: Split = "train") -> Float[Tensor, "n d"]:
        return split_part(self._inputs, self.n_train, check_split(split))

    def labels(self, split: Split = "train") -> Float[Tensor, " n"]:
        return split_part(self._labels, self.n_train, check_split(split))

    @cached_property
    def squared_error_bound(self) -> float:
        """``tolerance · Var(train labels)``: the squared error below which an example is correct."""
        return float(self.tolerance * self.labels("train").double().var(unbiased=False))

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "PolynomialRegression":
        check_task_fields(cls.__name__, d, {"d", "n_train", "n_test", "seed", "beta_seed", "tolerance"})
        return cls(**d)

