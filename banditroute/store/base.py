"""The log's interface, one meaning for both engines: what the service, the learner and the judge call.

`LogStore` is the contract: `sqlite.Store` (the embedded default, one file in the data directory)
and `postgres.PostgresStore` (`[store] url = "postgresql://…"`, shared by any number of hosts) both
satisfy it structurally, so the SQLite hot path keeps calling its own methods with no layer between.
`open_store` picks the engine from the configuration; psycopg is imported only when it is asked for.

What both engines promise:
- `write` appends one batch atomically, decisions before parts; once it returns, the batch is
  committed (with `durable=True`, flushed to disk). With `max_parts_per_event` it stores no part
  that would take its event past that many, counting in the same transaction (so concurrent
  writers on any process or host never exceed it), and returns the refused parts' indices.
- `seq` of decisions, feedback parts and operator changes grows in commit order, so a reader that
  remembers the last seq it saw (`tail`, `config_changes_after`) never misses a row committed later.
- Every failure is a `StoreError`; a store reconnects or reopens by itself at its next call.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from banditroute.config import Config
from banditroute.store.prune import Pruned
from banditroute.types import ConfigChange, Decision, FeedbackPart, JudgeSample, LearnedRow

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class Checkpoint:
    learned_seq: int
    vw_args: list[str]
    model: bytes
    ts: float


@dataclass(frozen=True, slots=True)
class EventState:
    model: str  # the model chosen
    tenant: str | None
    learned: bool  # its join has finished
    parts: int  # feedback parts stored for it


class LogStore(Protocol):
    """The event log, the policy checkpoints and the judge's queue. Used from one thread at a time."""

    def close(self) -> None: ...

    def write(
        self,
        decisions: Iterable[Decision] = (),
        parts: Iterable[FeedbackPart] = (),
        learned: Iterable[LearnedRow] = (),
        checkpoint: Checkpoint | None = None,
        changes: Iterable[ConfigChange] = (),
        *,
        durable: bool = True,
        max_parts_per_event: int | None = None,
    ) -> set[int]: ...

    # events
    def decision(self, event_id: str) -> Decision | None: ...
    def feedback_count(self, event_id: str) -> int: ...
    def is_learned(self, event_id: str) -> bool: ...
    def event_state(self, event_id: str) -> EventState | None: ...
    def feedback(self, event_id: str | None = None) -> list[FeedbackPart]: ...

    # learning: replay, tailing, recovery
    def learned_after(self, seq: int) -> Iterator[tuple[LearnedRow, Decision]]: ...
    def tail(
        self, after_decision: int, after_feedback: int
    ) -> tuple[list[tuple[int, Decision]], list[tuple[int, FeedbackPart]]]: ...
    def unlearned_state(self) -> tuple[list[Decision], list[FeedbackPart], int, int]: ...
    def max_learned_seq(self) -> int: ...
    def newest_checkpoint_seq(self) -> int: ...
    def checkpoints(self) -> list[tuple[Checkpoint, bool]]: ...
    def config_changes(self) -> list[ConfigChange]: ...
    def config_changes_after(self, seq: int) -> list[tuple[int, ConfigChange]]: ...
    def joined_log(self) -> Iterator[tuple[Decision, LearnedRow | None, list[FeedbackPart]]]: ...

    # what the rules and /stats restore at start
    def counts(self) -> dict[str, int]: ...
    def selection_counts(self) -> dict[str, int]: ...
    def shadow_outcomes(self) -> list[tuple[float, float]]: ...
    def shadow_counts(self) -> tuple[int, int]: ...
    def rewards_per_model(self) -> dict[str, int]: ...
    def spend_since(self, ts: float) -> dict[str, float]: ...
    def recent_latencies(self, per_model: int) -> list[tuple[str, float]]: ...
    def outcomes_per_model(self, through_seq: int | None = None) -> list[tuple[str, int, float, int, float]]: ...

    # retention
    def prune_batch(self, before_ts: float, limit: int) -> Pruned: ...

    # the judge's queue
    def put_sample(self, sample: JudgeSample, keep_after: float, max_samples: int) -> None: ...
    def prune_samples(self, keep_after: float, max_samples: int) -> None: ...
    def due_samples(self, not_after: float, limit: int) -> list[JudgeSample]: ...
    def samples(self) -> list[JudgeSample]: ...
    def finish_sample(self, sample: JudgeSample, spent_usd: float) -> None: ...
    def add_judge_spend(self, usd: float) -> None: ...
    def judge_spend(self) -> float: ...
    def has_quality_from(self, event_id: str, source: str) -> bool: ...


def is_postgres(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def open_store(config: Config) -> LogStore:
    """The configured log: PostgreSQL at `store.url`, else the SQLite file in `server.data_dir`."""
    if is_postgres(config.store.url):
        from banditroute.store.postgres import PostgresStore

        return PostgresStore(config.store.url)
    from banditroute.store.datadir import db_path
    from banditroute.store.sqlite import Store

    return Store(db_path(config.server.data_dir))


def describe(config: Config) -> str:
    """Where the log is, for log lines: the file, or the database URL without its password."""
    if is_postgres(config.store.url):
        from banditroute.store.postgres import redacted

        return redacted(config.store.url)
    from banditroute.store.datadir import db_path

    return str(db_path(config.server.data_dir))


def reward_secret(config: Config, store: LogStore, environ: Mapping[str, str]) -> bytes:
    """The key of the reward tokens. SQLite: env BANDITROUTE_SECRET, else a file in the data directory.
    PostgreSQL: env BANDITROUTE_SECRET, else one kept in the database, so a token any host handed out
    is valid on every host."""
    from banditroute.store.datadir import SECRET_ENV, load_or_create_secret, secret_path

    if is_postgres(config.store.url) and environ.get(SECRET_ENV) is None:
        from banditroute.store.postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        return store.shared_secret(secrets.token_bytes(SECRET_BYTES))
    return load_or_create_secret(secret_path(config.server.data_dir), environ)
