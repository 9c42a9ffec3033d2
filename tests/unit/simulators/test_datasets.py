"""Loading logged prompt × model matrices: the fixtures (slices of the shared sets) and tiny hand-made sets."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from simulators.datasets import Dataset, load_dataset, price_per_token_estimates
from tests.support import FIXTURES
from tools.make_fixtures import make_fixture

DATA = FIXTURES / "data"
SETS = ["routerbench", "llmrouter", "logpai"]


def write_set(folder: Path, rows: list[dict[str, Any]], models: dict[str, dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "prompts.jsonl.gz", "wb") as out:
        out.writelines(orjson.dumps(row) + b"\n" for row in rows)
    (folder / "models.json").write_bytes(orjson.dumps(models))
    return folder


def row(id_: str, prompt: str, results: dict[str, dict[str, Any]], split: str | None = None) -> dict[str, Any]:
    return {"id": id_, "task": "t", "split": split, "prompt": prompt, "results": results}


PRICED = {"cheap": {"input_price": 1.0, "output_price": 3.0}, "dear": {"input_price": 10.0, "output_price": 30.0}}


@pytest.mark.parametrize("name", SETS)
def test_each_fixture_loads_with_consistent_shapes(name: str) -> None:
    ds = load_dataset(DATA / name)
    n, m = len(ds), len(ds.models)
    assert ds.name == name and ds.n == n > 100 and m >= 8
    assert ds.models == sorted(ds.models) and set(ds.prices) == set(ds.models)
    for array in (ds.quality, ds.cost_usd, ds.input_tokens, ds.output_tokens):
        assert array.shape == (n, m)
    assert len(ds.ids) == len(ds.prompts) == len(ds.tasks) == len(ds.splits) == n
    assert ds.input_tokens.dtype.kind == "i" and ds.output_tokens.dtype.kind == "i"
    recorded = ~np.isnan(ds.quality)
    assert ((ds.quality[recorded] >= 0) & (ds.quality[recorded] <= 1)).all()
    assert np.array_equal(recorded, ~np.isnan(ds.cost_usd))
    assert (ds.cost_usd[recorded] > 0).all() and (ds.input_tokens[recorded] > 0).all()


def test_missing_results_are_nan_and_unavailable() -> None:
    ds = load_dataset(DATA / "routerbench")
    incomplete = [i for i in range(len(ds)) if not ds.available(i).all()]
    assert incomplete, "the routerbench fixture keeps prompts that lack some model's result"
    i = incomplete[0]
    mask = ds.available(i)
    assert mask.dtype == bool and mask.any()
    assert np.isnan(ds.quality[i, ~mask]).all() and np.isnan(ds.cost_usd[i, ~mask]).all()
    assert (ds.input_tokens[i, ~mask] == 0).all()


def test_cost_is_computed_from_prices_when_not_recorded() -> None:
    ds = load_dataset(DATA / "llmrouter", assumed_output_tokens=100)
    input_price = np.array([ds.prices[m][0] for m in ds.models])
    output_price = np.array([ds.prices[m][1] for m in ds.models])
    assert (ds.output_tokens == 100).all()
    expected = (ds.input_tokens * input_price + 100 * output_price) / 1e6
    np.testing.assert_allclose(ds.cost_usd, expected)


def test_assumed_output_tokens_drives_cost_only_where_unrecorded() -> None:
    short = load_dataset(DATA / "llmrouter", assumed_output_tokens=10)
    long = load_dataset(DATA / "llmrouter", assumed_output_tokens=1000)
    assert (long.cost_usd > short.cost_usd).all()
    recorded = load_dataset(DATA / "logpai", assumed_output_tokens=10)
    assert np.array_equal(recorded.cost_usd, load_dataset(DATA / "logpai", assumed_output_tokens=1000).cost_usd)


def test_recorded_cost_and_tokens_are_kept(tmp_path: Path) -> None:
    folder = write_set(
        tmp_path / "s",
        [
            row(
                "a",
                "x" * 40,
                {
                    "cheap": {"quality": 1.0, "cost_usd": 0.5, "input_tokens": 7, "output_tokens": 9},
                    "dear": {"quality": 0.0, "cost_usd": None},
                },
            )
        ],
        PRICED,
    )
    ds = load_dataset(folder, assumed_output_tokens=20)
    assert ds.cost_usd[0].tolist() == [0.5, (10 * 10.0 + 20 * 30.0) / 1e6]
    assert ds.input_tokens[0].tolist() == [7, 10], "unknown input tokens are estimated as characters / 4"
    assert ds.output_tokens[0].tolist() == [9, 20]


def test_model_with_neither_price_nor_cost_is_an_error(tmp_path: Path) -> None:
    folder = write_set(
        tmp_path / "s",
        [row("p1", "hello", {"free": {"quality": 1.0, "cost_usd": None}})],
        {"free": {"input_price": None, "output_price": None}},
    )
    with pytest.raises(ValueError, match=r"'free'.*'p1'.*no .*price"):
        load_dataset(folder)


def test_pool_is_the_models_with_results(tmp_path: Path) -> None:
    folder = write_set(
        tmp_path / "s",
        [
            row(
                "a",
                "p",
                {
                    "dear": {"quality": 1.0, "cost_usd": None},
                    "unlisted": {"quality": 0.5, "cost_usd": 0.002, "input_tokens": 1000, "output_tokens": 1000},
                },
            )
        ],
        {**PRICED, "never_run": {"input_price": 1.0, "output_price": 1.0}},
    )
    ds = load_dataset(folder)
    assert ds.models == ["dear", "unlisted"], "never_run has no result anywhere; unlisted is kept"
    assert ds.prices["unlisted"] == (None, None)
    assert price_per_token_estimates(ds) == {"dear": (10.0, 30.0), "unlisted": (1.0, 1.0)}


def test_dedupe_keeps_the_first_of_identical_prompts() -> None:
    every = load_dataset(DATA / "llmrouter", dedupe=False)
    unique = load_dataset(DATA / "llmrouter")
    assert len(set(every.prompts)) < len(every) and len(set(unique.prompts)) == len(unique)
    first = {}
    for i, prompt in enumerate(every.prompts):
        first.setdefault(prompt, i)
    assert unique.ids == [every.ids[i] for i in sorted(first.values())]
    repeated_from_train = [
        i
        for i, p in enumerate(every.prompts)
        if first[p] != i and every.splits[first[p]] == "train" and every.splits[i] == "test"
    ]
    assert repeated_from_train, "the llmrouter fixture keeps test prompts repeated from train"
    assert not {every.ids[i] for i in repeated_from_train} & set(unique.ids)


def test_limit_counts_rows_after_dedupe() -> None:
    ds = load_dataset(DATA / "llmrouter", limit=120)
    assert len(ds) == 120 and len(set(ds.prompts)) == 120
    assert load_dataset(DATA / "llmrouter").ids[:120] == ds.ids
    assert len(load_dataset(DATA / "llmrouter", limit=0)) == 0


def test_subset_selects_rows_in_order() -> None:
    ds = load_dataset(DATA / "routerbench")
    picked = [5, 0, 5]
    sub = ds.subset(picked)
    assert isinstance(sub, Dataset) and len(sub) == 3 and sub.name == ds.name and sub.models == ds.models
    assert sub.ids == [ds.ids[i] for i in picked] and sub.splits == [ds.splits[i] for i in picked]
    np.testing.assert_array_equal(sub.quality, ds.quality[picked])
    np.testing.assert_array_equal(sub.output_tokens, ds.output_tokens[picked])
    test_rows = np.flatnonzero(np.array(ds.splits) == "test")
    assert set(ds.subset(test_rows).splits) == {"test"}


def test_arrays_are_read_only() -> None:
    ds = load_dataset(DATA / "logpai")
    with pytest.raises(ValueError, match="read-only"):
        ds.quality[0, 0] = 1.0


def test_price_estimates_reproduce_recorded_costs() -> None:
    ds = load_dataset(DATA / "routerbench")
    assert all(price == (None, None) for price in ds.prices.values())
    estimates = price_per_token_estimates(ds)
    for j, model in enumerate(ds.models):
        ok = ~np.isnan(ds.quality[:, j])
        input_price, output_price = estimates[model]
        assert input_price == output_price > 0
        tokens = ds.input_tokens[ok, j].sum() + ds.output_tokens[ok, j].sum()
        assert tokens * input_price / 1e6 == pytest.approx(ds.cost_usd[ok, j].sum())
    by_price = sorted(estimates, key=lambda m: estimates[m][0])
    assert by_price.index("gpt-4-1106-preview") > by_price.index("gpt-3.5-turbo-1106")


def test_known_prices_are_returned_as_declared() -> None:
    ds = load_dataset(DATA / "logpai")
    assert price_per_token_estimates(ds) == ds.prices


def test_make_fixture_writes_a_loadable_slice(tmp_path: Path) -> None:
    both = {"cheap": {"quality": 1.0, "cost_usd": None}, "dear": {"quality": 0.5, "cost_usd": 0.2}}
    rows = [row(f"r{i}", f"prompt {i % 30}", both, split="train" if i < 30 else "test") for i in range(60)]
    rows.append(row("partial", "lonely", {"dear": {"quality": 0.0, "cost_usd": 0.1}}))
    source = write_set(tmp_path / "src" / "toy", rows, PRICED)
    assert make_fixture(source, tmp_path / "out" / "toy", size=10) == 10
    every = load_dataset(tmp_path / "out" / "toy", dedupe=False)
    assert "partial" in every.ids, "prompts missing a model's result are kept as edge cases"
    assert len(set(every.prompts)) < len(every), "repeated prompts are kept as edge cases"
    assert every.ids == sorted(every.ids, key=[r["id"] for r in rows].index), "file order is kept"


def test_unsplit_logs_keep_repeated_prompts_by_default() -> None:
    logs = load_dataset(DATA / "logpai")
    assert len(logs) == len(load_dataset(DATA / "logpai", dedupe=False))
    assert len(set(logs.prompts)) < len(logs), "the logpai fixture holds repeated log lines"
    assert len(load_dataset(DATA / "logpai", dedupe=True)) == len(set(logs.prompts))
