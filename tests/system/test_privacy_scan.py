"""What the log holds: a real server is sent a distinctive word and an email address in `/route`, fed back
through `/reward`, checkpointed and killed; then no table, no column, no file of its data directory (the
SQLite file, its WAL and shared memory, the lock, the secret) and no line it logged holds either."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiohttp

from tests.conftest import ServerProcess, post

WORD = "Zorblaxianite"  # in no vocabulary: if it is anywhere, it came from the request
EMAIL = "wilhelmina.quaxley@fastmail.fm"
# The email's own words too: the words of a query are what features are made of.
NEEDLES = [WORD.lower(), EMAIL.lower(), "wilhelmina", "quaxley", "fastmail"]
QUERIES = [
    f"Summarise the {WORD} ledger in three bullet points",  # no personal data: its words are hashed
    f"Write to {EMAIL} about the {WORD} invoice",  # an email: sensitive, its words are left out
    f"{WORD} " * 200 + f"contact {EMAIL}",  # longer than max_words: its tail is read too
]


def found_in(blob: bytes) -> list[str]:
    lowered = blob.lower()
    return [n for n in NEEDLES if n.encode() in lowered]


def rows_with_needles(db: Path) -> list[tuple[str, str]]:
    """(table, column) of every value of every table that holds a needle."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    hits = []
    try:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert {"decisions", "feedback", "learned", "checkpoints", "judge_samples"} <= set(tables)
        for table in tables:
            cur = conn.execute(f'SELECT * FROM "{table}"')
            names = [c[0] for c in cur.description]
            for row in cur:
                for name, value in zip(names, row):
                    raw = value if isinstance(value, bytes) else str(value).encode()
                    if found_in(raw):
                        hits.append((table, name))
    finally:
        conn.close()
    return hits


async def test_neither_the_word_nor_the_email_reaches_any_table_file_or_log_line(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, checkpoint_interval_s=0.2)
    async with aiohttp.ClientSession() as session:
        await server.start(session)
        try:
            decisions = []
            for query in QUERIES:
                status, d = await post(session, server.url + "/route", {"query": query, "metadata": {"task": "qa"}})
                assert status == 200, d
                decisions.append(d)
            assert "data_policy" in decisions[1]["reason"]  # the email was detected
            for d in decisions:
                for part in ({"latency_ms": 800, "input_tokens": 40, "output_tokens": 90}, {"quality": 0.8}):
                    status, body = await post(
                        session,
                        server.url + "/reward",
                        {"event_id": d["event_id"], "reward_token": d["reward_token"], **part},
                    )
                    assert status in (200, 202), body
                assert body["status"] == "learned"
            pages = []
            for path in ("/stats", "/metrics", "/healthz"):
                async with session.get(server.url + path) as resp:
                    pages.append(await resp.read())
            await asyncio.sleep(0.6)  # a checkpoint or two (every 0.2 s)
            # While it runs: the WAL and its index are there, and hold nothing either.
            files = {p.name: p.read_bytes() for p in server.data_dir.iterdir() if p.is_file()}
            assert {"banditroute.db", "banditroute.db-wal", "banditroute.db-shm", "reward_secret"} <= set(files)
        finally:
            server.kill()
    assert {name: found_in(blob) for name, blob in files.items() if found_in(blob)} == {}
    assert [found_in(page) for page in pages if found_in(page)] == []
    assert found_in(server.log_text().encode()) == []
    after_kill = {p.name: found_in(p.read_bytes()) for p in server.data_dir.iterdir() if p.is_file()}
    assert {name: hits for name, hits in after_kill.items() if hits} == {}
    db = server.data_dir / "banditroute.db"
    assert rows_with_needles(db) == []
    # And the log is still what learning needs: every decision with features, every join learned.
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    features = dict(conn.execute("SELECT event_id, features FROM decisions").fetchall())
    learned = conn.execute("SELECT count(*) FROM learned WHERE vw_cost IS NOT NULL").fetchone()[0]
    checkpoints = conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
    conn.close()
    assert learned == 3 and checkpoints >= 1
    plain, sensitive, long = (features[d["event_id"]] for d in decisions)
    words = plain.split("|x")[0].split()[1:]
    assert len(words) == 8 and all(len(w) == 5 for w in words)  # the 8 distinct words, as tokens
    assert sensitive.startswith("|w |x") and long.startswith("|w |x")  # the email: no words at all
