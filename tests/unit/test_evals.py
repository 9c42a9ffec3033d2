"""Eval samples for a warm start: the data-set format read strictly, and `banditroute warmstart` end to end."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import orjson
import pytest

from banditroute.cli import main
from banditroute.config import load_config
from banditroute.evals import EvalsError, parse_line, read_evals
from banditroute.snapshot import loads
from banditroute.types import Outcome


def write_evals(path: Path, rows: list[dict]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    with gzip.open(path / "prompts.jsonl.gz", "wb") as f:
        for row in rows:
            f.write(orjson.dumps(row) + b"\n")
    return path


def test_a_line_becomes_an_example_with_every_models_outcome() -> None:
    line = {"id": "p1", "task": "math", "prompt": "2+2?", "results": {"a": {"quality": 1, "cost_usd": 0.01}, "b": {}}}
    ex = parse_line(line, with_task=True)
    assert ex.query == "2+2?" and ex.metadata == {"task": "math"}
    assert ex.outcomes == {"a": Outcome(quality=1.0, cost_usd=0.01), "b": Outcome()}
    assert parse_line(line).metadata == {}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ([], "object with a string 'prompt'"),
        ({"prompt": 3, "results": {"a": {}}}, "string 'prompt'"),
        ({"prompt": "q", "results": {}}, "non-empty 'results'"),
        ({"prompt": "q", "results": {"a": 1}}, "results['a'] must be an object"),
        ({"prompt": "q", "results": {"a": {"quality": 1.5}}}, "quality must be a number in [0.0, 1.0]"),
        ({"prompt": "q", "results": {"a": {"quality": True}}}, "quality must be a number"),
        ({"prompt": "q", "results": {"a": {"cost_usd": -1}}}, "cost_usd must be a number"),
        ({"prompt": "q", "results": {"a": {"output_tokens": 2.5}}}, "output_tokens must be a whole number"),
    ],
)
def test_a_bad_line_is_refused_with_what_is_wrong(line: object, message: str) -> None:
    with pytest.raises(EvalsError, match=re.escape(message)):
        parse_line(line)


def test_read_evals_names_the_file_and_line_of_a_bad_row(tmp_path: Path) -> None:
    folder = write_evals(tmp_path / "evals", [{"prompt": "q", "results": {"a": {"quality": 1}}}, {"prompt": "q"}])
    with pytest.raises(EvalsError, match=r"prompts\.jsonl\.gz:2: each line must have"):
        read_evals(folder)
    assert len(read_evals(folder, limit=1)) == 1
    with pytest.raises(EvalsError, match="no eval file or folder"):
        read_evals(tmp_path / "missing")


def test_warmstart_command_writes_a_policy_file_and_names_the_best_model(tmp_path: Path, capsys) -> None:
    names = [m.name for m in load_config().models][:3]
    rows = [
        {"prompt": f"question {i}", "results": {m: {"quality": 0.95 if m == names[1] else 0.2} for m in names}}
        for i in range(30)
    ]
    rows[0]["results"]["not-a-catalog-model"] = {"quality": 1.0}
    folder = write_evals(tmp_path / "evals", rows)
    out = tmp_path / "policy.json"
    assert main(["warmstart", "--evals", str(folder), "--cost-weight", "0", "--out", str(out)]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["examples"] == 30 and summary["updates"] == 90
    assert summary["baseline"] == names[1] and summary["not_in_catalog"] == ["not-a-catalog-model"]
    assert loads(orjson.loads(out.read_bytes())).source == "warmstart"


def test_warmstart_refuses_an_eval_sample_with_no_catalog_model(tmp_path: Path, capsys) -> None:
    folder = write_evals(tmp_path / "evals", [{"prompt": "q", "results": {"x": {"quality": 1}}}])
    assert main(["warmstart", "--evals", str(folder), "--out", str(tmp_path / "p.json")]) == 2
    assert "none of the eval sample's models is in the catalog" in capsys.readouterr().err
