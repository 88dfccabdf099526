"""Row look-ups into a table, the embedding step of every forward.

``gather_rows(table, index)[..., :] = table[index[...], :]``: the values of ``F.embedding``, taken
as ``index_select`` so that the backward is one ``index_add_`` into zeros. On the CPU that takes
about half the time of embedding's dense backward for the (thousands of rows, tens of columns)
look-ups of these models, and it adds the same rows in the same order: the gradients are equal bit
for bit (``tests/test_weights.py``).
"""

from __future__ import annotations

from jaxtyping import Float, Int
from torch import Tensor

__all__ = ["gather_rows"]


def gather_rows(table: Float[Tensor, "rows d"], index: Int[Tensor, "*shape"]) -> Float[Tensor, "*shape d"]:
    """``table[index]`` for a 2-D ``table`` and integer ``index`` of any shape."""
    return table.index_select(0, index.reshape(-1)).view(*index.shape, table.shape[-1])
