"""The contextual part of the decomposed learner in numpy: per model, a ridge regression of the quality
residual (quality - the model's mean) on the request's features, used at its mean. Pure, no I/O.

The features are the decision's VW text (features.py): each token, with its namespace, is signed-hashed
into `dims` buckets; each namespace is scaled to unit length, then the row, and a constant is added.
Ridge (recursive least squares, Sherman-Morrison) shrinks a model's residual to 0 until its own outcomes
show a pattern: no other model's data and no step-size schedule move it, unlike SGD, whose estimates for
rarely chosen models drift. Cost: a decision is one (models x dims) matrix-vector product; an update
is O(dims^2) for the chosen model only (dims 256: ~65 k multiply-adds, tens of µs); memory is
dims^2 + 2 dims floats per model (dims 256: 0.5 MB).
"""

from __future__ import annotations

import zlib

import numpy as np


def vector(features: str, dims: int) -> np.ndarray:
    """The hashed, normalised feature row of a decision's VW text, with a constant in the last bucket."""
    index: list[int] = []
    sign: list[float] = []
    group: list[int] = []
    namespace = ""
    g = 0  # text before any namespace marker is group 0
    for token in features.split(" "):
        if token.startswith("|"):
            namespace, g = token[1:], g + 1
            continue
        h = zlib.crc32((namespace + token).encode())
        index.append(h % (dims - 1))
        sign.append(1.0 if h & 0x80000000 else -1.0)
        group.append(g)
    row = np.zeros(dims)
    if index:
        signs = np.array(sign)
        groups = np.array(group)
        # Each namespace to unit length: a long prompt's many words do not drown its structure signals.
        sizes = np.bincount(groups)
        signs /= np.sqrt(sizes[groups])
        np.add.at(row, np.array(index), signs)
        norm = np.linalg.norm(row)
        if norm > 0:
            row /= norm
    row[-1] = 1.0
    return row


class Ridge:
    """Per-model ridge regressions of the residual, all on the same hashed rows."""

    def __init__(self, dims: int, strength: float) -> None:
        self.dims = dims
        self.strength = strength
        self.inverse: dict[str, np.ndarray] = {}  # (A + strength I)^-1
        self.moment: dict[str, np.ndarray] = {}  # sum of target x row
        self.theta: dict[str, np.ndarray] = {}  # inverse @ moment, kept for the decision path

    def predict(self, row: np.ndarray, models: tuple[str, ...] | list[str]) -> np.ndarray:
        theta = self.theta
        return np.array([theta[m] @ row if m in theta else 0.0 for m in models])

    def learn(self, model: str, row: np.ndarray, target: float) -> None:
        inverse = self.inverse.get(model)
        if inverse is None:
            inverse = self.inverse[model] = np.eye(self.dims) / self.strength
            self.moment[model] = np.zeros(self.dims)
        ax = inverse @ row
        inverse -= np.outer(ax, ax) / (1.0 + row @ ax)
        self.moment[model] += target * row
        self.theta[model] = inverse @ self.moment[model]

    def is_finite(self) -> bool:
        return all(np.isfinite(a).all() for a in (*self.inverse.values(), *self.moment.values()))

    def to_bytes(self) -> tuple[list[str], bytes]:
        """The models (sorted) and their inverse and moment as float64 bytes, in that order."""
        names = sorted(self.inverse)
        return names, b"".join(self.inverse[m].tobytes() + self.moment[m].tobytes() for m in names)

    def load(self, names: list[str], data: bytes) -> int:
        """Restore `to_bytes`'s models from the start of `data`; returns the bytes read."""
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("ridge_models must be a list of names")
        d = self.dims
        size = 8 * (d * d + d)
        if len(data) < size * len(names):
            raise ValueError("the ridge state is truncated")
        for k, m in enumerate(names):
            values = np.frombuffer(data, dtype=np.float64, count=d * d + d, offset=k * size)
            self.inverse[m] = values[: d * d].reshape(d, d).copy()
            self.moment[m] = values[d * d :].copy()
            self.theta[m] = self.inverse[m] @ self.moment[m]
        return size * len(names)
