"""Image classification with a squared-error loss on one-hot labels (the MNIST set-up of Liu et al.
2023, "Omnigrok", used by Minegishi et al., "Grokking Tickets", App. B).

Images are flattened to vectors with pixels scaled to [0, 1]; labels are class indices; the loss is
``mean_{i,c} (ŷ_ic - onehot(y_i)_c)²`` (:func:`grokinterp.metrics.mse_f64`); accuracy is the argmax.

Sources (nothing is downloaded):

* ``"digits"`` (default): scikit-learn's bundled 8×8 digits (``sklearn.datasets.load_digits``: 1797
  images of 64 pixels with values 0..16, ten classes), split by a seeded permutation.
* ``"mnist"``: MNIST read from a local ``path`` the user gives, in one of two layouts:

  - a folder holding the four standard idx files ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each may
    be gzipped, with a ``.gz`` suffix);
  - an ``.npz`` archive with the arrays ``x_train``, ``y_train``, ``x_test``, ``y_test`` (uint8
    images ``(n, h, w)`` or ``(n, h·w)``, integer labels), read with ``allow_pickle=False``.

  The train split is ``n_train`` images of the training file (seeded), the test split the test
  file's images (all, or ``n_test`` of them, seeded). The data's SHA-256 is recorded in the task
  (``sha256``) and checked when the task is rebuilt, so a run never silently reads other images.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import ClassVar, Literal, Optional

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..checks import check_count
from ..errors import GrokinterpError
from .protocol import Split, check_split
from .vector import check_seeds, check_task_fields, derived_seed, seeded_order, split_part

__all__ = ["IMAGE_SOURCES", "MNIST_IDX_FILES", "ImageClassification", "read_idx", "read_mnist"]

ImageSource = Literal["digits", "mnist"]
IMAGE_SOURCES = ("digits", "mnist")
#: The standard MNIST file names (each optionally with ``.gz``), by the array they hold.
MNIST_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    """One idx file (optionally gzipped): magic ``0x0000 TT NN`` (TT the element type, NN the number
    of dimensions), NN big-endian uint32 sizes, then the data. Raises naming the file on a bad
    header or a size that does not match."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise GrokinterpError(f"{path}: cannot read this idx file ({e})") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_TYPES or raw[3] < 1:
        raise GrokinterpError(f"{path}: not an idx file (expected the magic 0x0000, a type byte and a dimension count)")
    ndim, dtype = raw[3], np.dtype(_IDX_TYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise GrokinterpError(f"{path}: truncated idx header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise GrokinterpError(f"{path}: idx header says shape {shape} ({expected} bytes), the file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def read_mnist(path: str | Path) -> dict[str, np.ndarray]:
    """``x_train, y_train, x_test, y_test`` from a folder of idx files or an ``.npz`` (see the module
    docstring): images as ``(n, pixels)`` uint8-range arrays, labels as int64."""
    path = Path(path)
    if not path.exists():
        raise GrokinterpError(
            f"{path}: no such file or folder; expected an MNIST .npz (x_train, y_train, x_test, y_test) or a folder "
            f"with the idx files {sorted(MNIST_IDX_FILES.values())} (nothing is downloaded)"
        )
    if path.is_dir():
        arrays = {}
        for key, name in MNIST_IDX_FILES.items():
            found = [p for p in (path / name, path / f"{name}.gz") if p.is_file()]
            if not found:
                raise GrokinterpError(f"{path}: lacks {name} (or {name}.gz); an MNIST folder holds {sorted(MNIST_IDX_FILES.values())}")
            arrays[key] = read_idx(found[0])
    elif path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = sorted(set(MNIST_IDX_FILES) - set(z.files))
                if missing:
                    raise GrokinterpError(f"{path}: lacks the arrays {missing}; expected x_train, y_train, x_test, y_test")
                arrays = {k: z[k] for k in MNIST_IDX_FILES}
        except GrokinterpError:
            raise
        except (OSError, ValueError, EOFError) as e:  # not a zip, or object arrays (pickles are refused)
            raise GrokinterpError(f"{path}: cannot read this .npz without executing pickled code ({e})") from None
    else:
        raise GrokinterpError(f"{path}: expected an .npz file or a folder of MNIST idx files, got a {path.suffix or 'suffix-less'} file")
    return _check_images(path, arrays)


def _check_images(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim not in (2, 3) or y.ndim != 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise GrokinterpError(
                f"{path}: {split} images of shape {x.shape} and labels of shape {y.shape}; expected (n, h, w) or "
                "(n, pixels) images and (n,) labels, n >= 1"
            )
        if not (np.issubdtype(x.dtype, np.number) and np.issubdtype(y.dtype, np.integer)):
            raise GrokinterpError(f"{path}: {split} images must be numbers and labels integers, got {x.dtype} and {y.dtype}")
        x = x.reshape(x.shape[0], -1)
        if x.size and (x.min() < 0 or x.max() > 255):
            raise GrokinterpError(f"{path}: {split} pixels must lie in [0, 255]")
        if y.min() < 0 or y.max() > 9:
            raise GrokinterpError(f"{path}: {split} labels must be digits 0..9")
        out[f"x_{split}"], out[f"y_{split}"] = x, y.astype(np.int64)
    if out["x_train"].shape[1] != out["x_test"].shape[1]:
        raise GrokinterpError(f"{path}: train and test images have different sizes")
    return out


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@lru_cache(maxsize=2)
def _mnist(path: str, stamp: tuple) -> tuple[dict[str, np.ndarray], str]:
    arrays = read_mnist(path)
    return arrays, _digest(arrays)


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # scikit-learn is imported only for its bundled data

    data = load_digits()
    return np.asarray(data.data, dtype=np.float64), np.asarray(data.target, dtype=np.int64)


@dataclass(frozen=True)
class ImageClassification:
    """Flattened images, ten classes, squared error on one-hot labels.

    Args:
        source: ``"digits"`` (scikit-learn's bundled 8×8 digits) or ``"mnist"`` (read from ``path``).
        path: the MNIST ``.npz`` or folder of idx files (``source="mnist"`` only).
        n_train: training images (the paper: 1000). Digits: the first ``n_train`` of a seeded
            permutation of the 1797 images; MNIST: ``n_train`` of the training file's, seeded.
        n_test: test images (``None``: digits, every image not in the train split; MNIST, the whole
            test file). Digits: the next ``n_test`` of the permutation; MNIST: a seeded subset.
        seed: seed of the split.
        sha256: digest of the MNIST arrays; filled in when the task is made and checked when it is
            rebuilt (a different file is refused).

    Inputs are float32 ``(n, pixels)`` in [0, 1] (digits: value / 16; MNIST: value / 255); labels
    int64 class indices. Indices within a split are in file order. A model for this task has
    ``d_in = pixels`` (64 or 784) and ``d_out = 10``.
    """

    kind: ClassVar[str] = "image_classification"
    loss: ClassVar[str] = "mse"
    accuracy_rule: ClassVar[str] = "argmax"

    source: ImageSource = "digits"
    path: Optional[str] = None
    n_train: int = 1000
    n_test: Optional[int] = None
    seed: int = 0
    sha256: Optional[str] = None

    def __post_init__(self) -> None:
        name = "ImageClassification"
        if not isinstance(self.source, str) or self.source not in IMAGE_SOURCES:
            raise GrokinterpError(f"{name}.source must be one of {list(IMAGE_SOURCES)}, got {self.source!r}")
        check_count(f"{name}.n_train", self.n_train, minimum=1)
        if self.n_test is not None:
            check_count(f"{name}.n_test", self.n_test, minimum=1)
        check_seeds(name, seed=self.seed)
        if self.source == "digits":
            if self.path is not None or self.sha256 is not None:
                raise GrokinterpError(f"{name}: path and sha256 belong to source='mnist'; the digits are bundled")
            available, test_pool = len(_digits()[1]), None
        else:
            if not isinstance(self.path, (str, Path)):
                raise GrokinterpError(
                    f"{name}(source='mnist') needs path=: a local MNIST .npz or folder of idx files (nothing is downloaded)"
                )
            object.__setattr__(self, "path", str(self.path))
            arrays, digest = self._mnist_arrays()
            if self.sha256 is not None and self.sha256 != digest:
                raise GrokinterpError(
                    f"{self.path}: its images have SHA-256 {digest[:16]}..., the task records {str(self.sha256)[:16]}...; "
                    "expected the file the task was made from"
                )
            object.__setattr__(self, "sha256", digest)
            available, test_pool = len(arrays["y_train"]), len(arrays["y_test"])
        n_test = self.n_test if self.n_test is not None else (available - self.n_train if test_pool is None else test_pool)
        need_train = self.n_train + (n_test if test_pool is None else 0)
        if need_train > available or n_test < 1 or (test_pool is not None and n_test > test_pool):
            raise GrokinterpError(
                f"{name}: n_train={self.n_train}, n_test={self.n_test} do not fit the {self.source} data "
                f"({available} images{'' if test_pool is None else f' to train on, {test_pool} to test on'}); "
                "expected smaller splits, each of at least one image"
            )

    def _mnist_arrays(self) -> tuple[dict[str, np.ndarray], str]:
        """The arrays and their digest, read once per file state (path, names, times, sizes)."""
        p = Path(self.path)
        if not p.exists():
            read_mnist(p)  # raises, naming the path and the accepted layouts
        files = sorted(p.iterdir()) if p.is_dir() else [p]
        stamp = tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files)
        return _mnist(str(p.resolve()), stamp)

    @property
    def d_in(self) -> int:
        return int(self._inputs.shape[1])

    @property
    def d_out(self) -> int:
        return 10

    @cached_property
    def _indices(self) -> tuple[Tensor, Tensor]:
        """Row indices of the train and test images in their files (each sorted)."""
        if self.source == "digits":
            n = len(_digits()[1])
            order = seeded_order(n, derived_seed(self.seed, "digits"))
            n_test = self.n_test if self.n_test is not None else n - self.n_train
            return order[: self.n_train].sort().values, order[self.n_train: self.n_train + n_test].sort().values
        arrays, _ = self._mnist_arrays()
        train = seeded_order(len(arrays["y_train"]), derived_seed(self.seed, "mnist_train"))[: self.n_train]
        n_test = len(arrays["y_test"])
        test = torch.arange(n_test) if self.n_test is None else seeded_order(n_test, derived_seed(self.seed, "mnist_test"))[: self.n_test]
        return train.sort().values, test.sort().values

    @cached_property
    def _data(self) -> tuple[Tensor, Tensor]:
        train, test = self._indices
        if self.source == "digits":
            x, y = _digits()
            x, y = torch.from_numpy(x) / 16.0, torch.from_numpy(y)
            xs, ys = torch.cat([x[train], x[test]]), torch.cat([y[train], y[test]])
        else:
            a, _ = self._mnist_arrays()
            xs = torch.cat([torch.from_numpy(a["x_train"][train.numpy()].astype(np.float64)),
                            torch.from_numpy(a["x_test"][test.numpy()].astype(np.float64))]) / 255.0
            ys = torch.cat([torch.from_numpy(a["y_train"][train.numpy()]), torch.from_numpy(a["y_test"][test.numpy()])])
        return xs.to(torch.float32), ys.long()

    @property
    def _inputs(self) -> Float[Tensor, "n pixels"]:
        return self._data[0]

    def inputs(self, split: Split = "train") -> Float[Tensor, "n pixels"]:
        return split_part(self._data[0], self.n_train, check_split(split))

    def labels(self, split: Split = "train") -> Int[Tensor, " n"]:
        return split_part(self._data[1], self.n_train, check_split(split))

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "source": self.source, "n_train": self.n_train, "n_test": self.n_test, "seed": self.seed}
        if self.source == "mnist":
            d.update(path=self.path, sha256=self.sha256)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ImageClassification":
        check_task_fields(cls.__name__, d, {"source", "path", "n_train", "n_test", "seed", "sha256"})
        return cls(**d)
