"""`banditroute bench` end to end on a tiny data set in the bundled format (in-process figures only:
speed itself is measured by `make bench`, not asserted here)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from banditroute.cli import main

HEADLINE_IN_PROCESS = {"decision_p99_us", "replay_decisions_per_s", "rss_mib_1m_pending"}


def tiny_set(root: Path) -> Path:
    folder = root / "logpai"
    folder.mkdir(parents=True)
    models = {"small": {"input_price": 0.2, "output_price": 0.2}, "large": {"input_price": 0.9, "output_price": 0.9}}
    (folder / "models.json").write_text(json.dumps(models))
    with gzip.open(folder / "prompts.jsonl.gz", "wt") as f:
        for i in range(50):
            results = {
                "small": {"quality": float(i % 3 == 0), "cost_usd": 1e-5},
                "large": {"quality": 1.0, "cost_usd": 5e-5},
            }
            f.write(
                json.dumps(
                    {
                        "id": str(i),
                        "task": "t",
                        "split": None,
                        "prompt": f"connection {i} refused at port {1000 + i}",
                        "results": results,
                    }
                )
                + "\n"
            )
    return root


def test_bench_writes_the_report_with_the_issues_keys(tmp_path: Path, capfd) -> None:
    data = tiny_set(tmp_path / "data")
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "--data",
                str(data),
                "--out",
                str(out),
                "--skip-http",
                "--iterations",
                "300",
                "--memory-routes",
                "3000",
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert set(report) >= HEADLINE_IN_PROCESS
    assert report["replay"]["decisions"] == 50 and report["replay"]["learned"] == 50
    assert report["memory"]["pending"] == 3000 and report["memory"]["rss_mib"] > 0
    for n in (4, 8, 16):
        assert 0 < report["in_process"][f"predict_{n}"]["p50_us"] <= report["in_process"][f"predict_{n}"]["p99_us"]
    assert "decision, 8 models" in capfd.readouterr().out
