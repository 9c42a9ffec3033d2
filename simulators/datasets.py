"""Load a logged prompt × model matrix (the format of data/README.md) into dense numpy arrays.

A data set is a folder with `prompts.jsonl.gz` (one prompt a line, with each model's recorded
outcome under `results`) and `models.json` (the pool and its prices in USD per 1M tokens, null
where the source recorded the real per-call cost instead). Any folder in that format loads; no set
is special-cased by name.

What is filled in when the source did not record it (each an assumption, not a measurement):
- input tokens: characters / 4;
- output tokens: `assumed_output_tokens` (default 256);
- cost: input tokens × input price + output tokens × output price, per 1M tokens.
A model that has neither a recorded cost nor a price cannot be costed and is an error.

Cells where a model has no recorded result hold NaN in `quality` and `cost_usd` and 0 in the token
arrays; `Dataset.available(i)` says which cells are real.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_parse: Callable[[bytes | str], Any]
try:
    import orjson

    _parse = orjson.loads
except ImportError:  # orjson is a dependency; the fallback only keeps a bare checkout importable
    import json

    _parse = json.loads

PROMPTS_FILE = "prompts.jsonl.gz"
MODELS_FILE = "models.json"
CHARS_PER_TOKEN = 4
TOKENS_PER_PRICE_UNIT = 1_000_000

Price = tuple[float | None, float | None]


@dataclass(frozen=True, eq=False)
class Dataset:
    """n prompts × m models. Rows follow the file order; columns follow `models` (sorted).

    The arrays are read-only so that worlds and baselines sharing one data set cannot alter it for
    each other; `subset` returns a new data set.
    """

    name: str
    ids: list[str]
    prompts: list[str]
    tasks: list[str]
    splits: list[str | None]
    models: list[str]
    quality: np.ndarray
    cost_usd: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    prices: dict[str, Price]

    def __post_init__(self) -> None:
        for array in (self.quality, self.cost_usd, self.input_tokens, self.output_tokens):
            array.setflags(write=False)

    @property
    def n(self) -> int:
        return len(self.ids)

    def __len__(self) -> int:
        return self.n

    def available(self, i: int) -> np.ndarray:
        """Which models have a recorded result for prompt `i` (bool mask over `models`)."""
        return ~np.isnan(self.quality[i])

    def subset(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        """The rows at `indices`, in that order (a train/test split, a sample, a shuffle)."""
        rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        return Dataset(
            name=self.name,
            ids=[self.ids[i] for i in rows],
            prompts=[self.prompts[i] for i in rows],
            tasks=[self.tasks[i] for i in rows],
            splits=[self.splits[i] for i in rows],
            models=list(self.models),
            quality=self.quality[rows],
            cost_usd=self.cost_usd[rows],
            input_tokens=self.input_tokens[rows],
            output_tokens=self.output_tokens[rows],
            prices=dict(self.prices),
        )


def load_dataset(
    path: str | Path, *, assumed_output_tokens: int = 256, limit: int | None = None, dedupe: bool | None = None
) -> Dataset:
    """Load the data set in folder `path`.

    `assumed_output_tokens` stands in for output lengths the source did not record (an assumption
    that drives the cost of such sets). `limit` keeps the first `limit` prompts (after dedupe).
    `dedupe` keeps only the first of prompts with identical text, so that a prompt repeated across
    a train/test split cannot leak from one into the other. By default (None) it applies to data
    sets that have a split; in an unsplit log (logpai) a repeated prompt is traffic, and is kept.
    """
    folder = Path(path)
    if assumed_output_tokens < 0:
        raise ValueError(f"assumed_output_tokens must be >= 0, got {assumed_output_tokens}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    declared = _read_prices(folder / MODELS_FILE)
    rows = list(_read_rows(folder / PROMPTS_FILE))
    if dedupe or (dedupe is None and any(row.get("split") for row in rows)):
        rows = _first_of_each_prompt(rows)
    if limit is not None:
        rows = rows[:limit]
    models = sorted({m for row in rows for m in row["results"]})
    prices = {m: declared.get(m, (None, None)) for m in models}
    columns = _fill(rows, models, prices, assumed_output_tokens)
    return Dataset(
        name=folder.name,
        ids=[str(row["id"]) for row in rows],
        prompts=[row["prompt"] for row in rows],
        tasks=[row.get("task") or "" for row in rows],
        splits=[row.get("split") for row in rows],
        models=models,
        prices=prices,
        **columns,
    )


def _read_prices(path: Path) -> dict[str, Price]:
    raw: dict[str, dict[str, Any]] = _parse(path.read_bytes())
    return {
        name: (_optional_float(spec.get("input_price")), _optional_float(spec.get("output_price")))
        for name, spec in raw.items()
    }


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _read_rows(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rb") as lines:
        for line in lines:
            if line.strip():
                yield _parse(line)


def _first_of_each_prompt(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    kept = []
    for row in rows:
        if row["prompt"] not in seen:
            seen.add(row["prompt"])
            kept.append(row)
    return kept


def _fill(
    rows: list[dict[str, Any]], models: list[str], prices: dict[str, Price], assumed_output_tokens: int
) -> dict[str, np.ndarray]:
    """The four n × m arrays, with unrecorded tokens and costs filled in as the module describes."""
    shape = (len(rows), len(models))
    quality = np.full(shape, np.nan)
    cost = np.full(shape, np.nan)
    tokens_in = np.zeros(shape, dtype=np.int64)
    tokens_out = np.zeros(shape, dtype=np.int64)
    column = {m: j for j, m in enumerate(models)}
    for i, row in enumerate(rows):
        estimated_in = max(1, len(row["prompt"]) // CHARS_PER_TOKEN)
        for model, result in row["results"].items():
            j = column[model]
            quality[i, j] = result["quality"]
            n_in = result.get("input_tokens")
            n_out = result.get("output_tokens")
            tokens_in[i, j] = estimated_in if n_in is None else n_in
            tokens_out[i, j] = assumed_output_tokens if n_out is None else n_out
            recorded = result.get("cost_usd")
            cost[i, j] = (
                recorded
                if recorded is not None
                else _priced(model, prices[model], tokens_in[i, j], tokens_out[i, j], row["id"])
            )
    return {"quality": quality, "cost_usd": cost, "input_tokens": tokens_in, "output_tokens": tokens_out}


def _priced(model: str, price: Price, n_in: int, n_out: int, prompt_id: str) -> float:
    input_price, output_price = price
    if input_price is None or output_price is None:
        raise ValueError(
            f"model {model!r} has no recorded cost_usd for prompt {prompt_id!r} and no "
            f"input_price/output_price in {MODELS_FILE}: cannot compute its cost"
        )
    return (n_in * input_price + n_out * output_price) / TOKENS_PER_PRICE_UNIT


def price_per_token_estimates(ds: Dataset) -> dict[str, tuple[float, float]]:
    """(input, output) USD per 1M tokens for every model, estimated where models.json has none.

    Sets such as routerbench record the real cost of each call instead of a price. For those
    models the estimate is one blended price for input and output alike: total recorded cost over
    total tokens (input + output) of the prompts where the model has a result, × 1M. It reproduces
    the model's total cost on the data exactly; it cannot tell input from output prices apart
    (token counts there are themselves estimates, so a two-price fit would be noise).
    """
    out: dict[str, tuple[float, float]] = {}
    for j, model in enumerate(ds.models):
        input_price, output_price = ds.prices[model]
        if input_price is not None and output_price is not None:
            out[model] = (input_price, output_price)
            continue
        recorded = ~np.isnan(ds.cost_usd[:, j])
        tokens = int(ds.input_tokens[recorded, j].sum() + ds.output_tokens[recorded, j].sum())
        if tokens == 0:
            raise ValueError(f"model {model!r} has no price and no tokens to estimate one from")
        blended = float(ds.cost_usd[recorded, j].sum()) / tokens * TOKENS_PER_PRICE_UNIT
        out[model] = (blended, blended)
    return out
