"""The contextual part of the decomposed learner in numpy: per model, a ridge regression of the quality
residual (quality - the model's mean) on the request's features, used at its mean. Pure, no I/O.

The features are the decision's VW text (features.py): each token, with its namespace, is signed-hashed
into `dims` buckets; each namespace is scaled to unit length, then the row, and a constant is added.
Ridge (recursive least squares, Sherman-Morrison) shrinks a model's residual to 0 until its own outcomes
show a pattern: no other model's data and no step-size schedule move it, unlike SGD, whose estimates for
rarely chosen models drift. Cost: a decision is one (models x dims) matrix-vector product; an update
is O(dims^2) for the chosen model only (dims 256: ~65 k multiply-adds, tens of µs); memory is
dims^2 + 2 dims floats per model (dims 128: 130 KB), about half of it in a snapshot.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np


def vector(features: str, dims: int) -> np.ndarray:
    """The hashed, normalised feature row of a decision's VW text, with a constant in the last bucket."""
    hashes: list[int] = []
    weights: list[float] = []
    for part in features.split("|"):
        tokens = part.split()
        if not tokens:
            continue
        # crc32(token, crc32(namespace)) is crc32(namespace + token): one hash per token, no concatenation.
        seed = zlib.crc32(tokens[0].encode()) if part[:1] != " " else 0
        words = tokens[1:] if part[:1] != " " else tokens
        if not words:
            continue
        hashes.extend([zlib.crc32(t.encode(), seed) for t in words])
        # Each namespace to unit length: a long prompt's many words do not drown its structure signals.
        weights.extend([len(words) ** -0.5] * len(words))
    row = np.zeros(dims)
    if hashes:
        h = np.array(hashes, dtype=np.uint64)
        signed = np.where(h & 0x80000000, 1.0, -1.0) * np.array(weights)
        row[: dims - 1] = np.bincount(h % (dims - 1), weights=signed, minlength=dims - 1)
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

    def predict(self, row: np.ndarray, models: Sequence[str]) -> np.ndarray:
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
        """The models (sorted) and, per model, the upper triangle of its inverse (Sherman-Morrison keeps it
        exactly symmetric: `outer(ax, ax)` is) and its moment, as float64 bytes."""
        names = sorted(self.inverse)
        upper = np.triu_indices(self.dims)
        return names, b"".join(self.inverse[m][upper].tobytes() + self.moment[m].tobytes() for m in names)

    def load(self, names: object, data: bytes) -> int:
        """Restore `to_bytes`'s models from the start of `data`; returns the bytes read."""
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("ridge_models must be a list of names")
        d = self.dims
        upper = np.triu_indices(d)
        half = len(upper[0])
        size = 8 * (half + d)
        if len(data) < size * len(names):
            raise ValueError("the ridge state is truncated")
        for k, m in enumerate(names):
            values = np.frombuffer(data, dtype=np.float64, count=half + d, offset=k * size)
            inverse = np.zeros((d, d))
            inverse[upper] = values[:half]
            inverse.T[upper] = values[:half]
            self.inverse[m], self.moment[m] = inverse, values[half:].copy()
            self.theta[m] = inverse @ self.moment[m]
        return size * len(names)
