"""The contextual bandit: the one module that knows Vowpal Wabbit.

`--cb_explore_adf`: each allowed model is an action with its own features: namespace `a` holds its
id, namespace `m` its catalog attributes (price and context classes, capabilities). The request's
features are shared (namespaces `w`, `x`, `u`, `c`, see `features.py`), and every shared namespace
is crossed with `a`, so each model gets its own weights per request feature. The attributes act
linearly only: a model added later starts from the bias of models of its class, but no model's
per-request estimates are tied to another's. (Crossing them with the text, `cross_attributes`,
lets a strong model's results on some requests raise the estimates of every model of its price
class there; on the bundled data sets that kept a weaker same-class model in heavy use.) VW
returns a pmf over the actions; the caller samples.

The bindings hold the GIL and are not thread-safe: one Policy per process, used from one thread.

Hot path: `predict` and `learn` call the bindings' core (`_core`) directly. The public wrappers
re-check every example's label type through two native calls per example and re-wrap each one,
which was a third of a decision's time in the profile (see docs/performance.md); the label
type is checked once here instead, and the action examples are parsed once per catalog.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import orjson
import vowpal_wabbit_next as vw
from vowpal_wabbit_next import _core as vw_core

from banditroute.config import PolicyConfig
from banditroute.quality import Learned
from banditroute.residual import Ridge, vector
from banditroute.types import ModelSpec

ACTION_NAMESPACE = "a"
ATTRIBUTE_NAMESPACE = "m"


class PolicyError(ValueError):
    """A policy snapshot or argument set that VW refuses."""


# The decomposed learner's VW part: per-model squared-loss regression of the quality residual
# (`--cb_type mtr`, every label at probability 1: `--cb_type dm` in VW 9.9 scales the target by the
# logged probability). Exploration is not VW's: see exploration.py.
DECOMPOSED = "thompson"
_SNAPSHOT_MAGIC = b"banditroute-decomposed\n"
_SNAPSHOT_VERSION = 1


def vw_args(config: PolicyConfig) -> list[str]:
    if config.exploration == DECOMPOSED:
        return _common_args(config, ["--cb_adf", "--cb_type", "mtr"])
    exploration = {
        "squarecb": [
            "--squarecb",
            "--gamma_scale",
            str(config.gamma_scale),
            "--gamma_exponent",
            str(config.gamma_exponent),
        ],
        "regcb": ["--regcb"],
        "regcbopt": ["--regcbopt"],
        "epsilon": ["--epsilon", str(config.epsilon)],
        "greedy": ["--epsilon", "0"],
        "softmax": ["--softmax", "--lambda", str(config.softmax_lambda)],
        "bag": ["--bag", str(config.bag_size), "--epsilon", str(config.epsilon)],
        "cover": ["--cover", str(config.cover_size)],
    }[config.exploration]
    return _common_args(config, ["--cb_explore_adf", *exploration])


def _common_args(config: PolicyConfig, reduction: list[str]) -> list[str]:
    args = [
        *reduction,
        "--quiet",
        "-b",
        str(config.bits),
        "-l",
        str(config.learning_rate),
        "--power_t",
        str(config.power_t),
        "--random_seed",
        "0",
    ]
    for ns in config.crossed_namespaces:
        args += ["-q", ns + ACTION_NAMESPACE]
    args += list(config.extra_args)
    return args


def action_features(spec: ModelSpec, cross_attributes: bool = False, attributes: bool = True) -> str:
    """The model's id, and (with `attributes`) its catalog attributes as categories, so a new model
    starts from what similar models learned."""
    parts = [f"|{ACTION_NAMESPACE}", "id=" + _safe(spec.name)]
    if not attributes:
        return " ".join(parts)
    blended = (spec.input_price + 3 * spec.output_price) / 4
    parts += [
        *(() if cross_attributes else (f"|{ATTRIBUTE_NAMESPACE}",)),
        f"price{_log_bucket(blended)}",
        f"ctx{_log_bucket(spec.context_window / 1000)}",
    ]
    parts += ["cap=" + _safe(c) for c in sorted(spec.capabilities)]
    if spec.allow_sensitive_data:
        parts.append("onprem")
    return " ".join(parts)


def _log_bucket(value: float) -> int:
    return int(math.floor(math.log2(value))) if value > 0 else -99


def _safe(text: str) -> str:
    return "".join("_" if c.isspace() or c in "|:" else c for c in text)


class Policy:
    """choose / learn / save / load over a VW Workspace."""

    def __init__(self, config: PolicyConfig, specs: Sequence[ModelSpec] = (), model_data: bytes | None = None):
        self.args = vw_args(config)
        self._cross = config.cross_attributes
        self._attributes = config.attributes
        self._min_p = config.min_learn_probability
        # The decomposed learner: VW learns each model's quality residual; `state` the rest (quality.py).
        self.decomposed = config.exploration == DECOMPOSED
        self.state = Learned()
        self.ridge = Ridge(config.residual_dims, config.residual_strength) if config.residual == "ridge" else None
        if self.decomposed and model_data is not None:
            model_data = self._load_state(model_data)
        try:
            self._ws = vw.Workspace(self.args, model_data=model_data)
        except Exception as exc:  # VW raises its own error types for bad args or bytes
            raise PolicyError(f"vowpal wabbit refused the policy: {exc}") from None
        if self._ws.label_type != vw.LabelType.CB or not self._ws.multiline:
            raise PolicyError(f"the policy needs a multi-line contextual-bandit workspace, got {self.args}")
        self._core = self._ws._workspace
        if model_data is not None and not self.is_finite():
            raise PolicyError("the policy has NaN or infinite weights")
        self._action_text: dict[str, str] = {}
        self._action_examples: dict[str, vw_core.Example] = {}
        self.specs: dict[str, ModelSpec] = {}
        self.set_catalog(specs)

    def _parse(self, text: str) -> vw_core.Example:
        return vw_core._parse_line_text(self._core, text)

    def set_catalog(self, specs: Sequence[ModelSpec]) -> None:
        """Refresh the action features; models no longer listed keep theirs for replaying old events."""
        for spec in specs:
            self.specs[spec.name] = spec
            text = action_features(spec, self._cross, self._attributes)
            if self._action_text.get(spec.name) != text:
                self._action_text[spec.name] = text
                self._action_examples[spec.name] = self._parse(text)

    def predict(self, features: str, models: Sequence[str]) -> list[float]:
        """The exploration pmf over `models`, aligned with them (decomposed: VW's residual cost estimates)."""
        examples = [vw_core._parse_line_text(self._core, "shared " + features)]
        cached = self._action_examples
        examples.extend([cached[m] for m in models])
        pmf = [0.0] * len(models)
        # cb_explore_adf answers a list of (action index, probability); the binding's type is the union of all
        for index, prob in self._core.predict_multi_ex_one(examples):  # type: ignore[misc,union-attr]
            pmf[index] = prob  # type: ignore[index,assignment]
        return pmf

    def learn(self, features: str, models: Sequence[str], chosen: int, probability: float, cost: float) -> None:
        """One update from a logged decision: `cost` in [0, 1], `probability` the logged one.

        Decomposed: `cost` is 1 - quality (the log's `vw_cost`), learned with full weight (see `learn_quality`).
        """
        if self.decomposed:
            self.learn_quality(features, models, chosen, 1.0 - cost)
            return
        self._learn(features, models, chosen, probability, cost)

    def _learn(self, features: str, models: Sequence[str], chosen: int, probability: float, cost: float) -> None:
        parse = self._parse
        cached = self._action_examples
        examples = [parse("shared " + features)]
        examples.extend([cached[m] for m in models])
        # Only the chosen action carries the label; the others are the cached, label-free examples.
        probability = max(probability, self._min_p)
        examples[chosen + 1] = parse(f"0:{cost:.6f}:{probability:.6f} " + self._action_text[models[chosen]])
        self._core.learn_multi_ex_one(examples)

    # -- the decomposed learner ---------------------------------------------------------------

    def quality(self, features: str, models: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each model's estimated quality on this request (its mean + the contextual residual, at its
        mean) and the posterior width of its mean, aligned with `models`."""
        stats = [self.state.get(m) for m in models]
        if self.ridge is not None:
            residual = self.ridge.predict(vector(features, self.ridge.dims), models)
        else:  # VW's cost estimate of (model mean - quality)
            residual = -np.array(self.predict(features, models))
        return np.array([s.mean for s in stats]) + residual, np.array([s.sd for s in stats])

    def learn_quality(self, features: str, models: Sequence[str], chosen: int, quality: float) -> None:
        """The chosen model's observed quality: VW learns its residual from the model mean as it stood
        before this observation (prequential), then the mean takes it in."""
        stats = self.state.of(models[chosen])
        if self.ridge is not None:
            self.ridge.learn(models[chosen], vector(features, self.ridge.dims), quality - stats.mean)
        else:
            self._learn(features, models, chosen, 1.0, stats.mean - quality)
        stats.observe_quality(quality)

    def _load_state(self, data: bytes) -> bytes:
        """Split a decomposed snapshot into its state (restored here) and the VW bytes (returned)."""
        if not data.startswith(_SNAPSHOT_MAGIC):
            raise PolicyError("not a decomposed-learner snapshot (trained with another policy.exploration?)")
        header, sep, rest = data[len(_SNAPSHOT_MAGIC) :].partition(b"\n")
        try:
            obj = orjson.loads(header)
            if not sep or obj.get("version") != _SNAPSHOT_VERSION:
                raise ValueError(f"expected version {_SNAPSHOT_VERSION}")
            residual = None if self.ridge is None else self.ridge.dims
            if obj.get("ridge_dims") != residual:
                raise ValueError(f"its ridge has {obj.get('ridge_dims')} dimensions, this policy {residual}")
            self.state = Learned.from_json(obj)
            size = 0
            if self.ridge is not None:
                size = self.ridge.load(obj["ridge_models"], rest)
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError, KeyError, OSError) as exc:
            raise PolicyError(f"the decomposed-learner snapshot is invalid: {exc}") from None
        return rest[size:]

    def is_finite(self) -> bool:
        """Whether every weight is a finite number: a NaN or inf weight poisons every prediction."""
        ridge_ok = self.ridge is None or self.ridge.is_finite()
        return bool(np.isfinite(self._ws.weights()).all()) and self.state.is_finite() and ridge_ok

    def knows(self, model: str) -> bool:
        return model in self._action_text

    def serialize(self) -> bytes:
        """VW's bytes; decomposed: a versioned header line with the per-model state, then VW's bytes."""
        if not self.decomposed:
            return self._ws.serialize()
        names, ridge = self.ridge.to_bytes() if self.ridge is not None else ([], b"")
        dims = self.ridge.dims if self.ridge is not None else None
        meta = {"version": _SNAPSHOT_VERSION, "ridge_dims": dims, "ridge_models": names, **self.state.to_json()}
        return _SNAPSHOT_MAGIC + orjson.dumps(meta) + b"\n" + ridge + self._ws.serialize()
