"""Cost control for an optional LLM/VLM labelling or audit hook: a per-day token budget
shared by every process that uses the same usage file.

The hook is an interface (``Auditor``): anything that takes a photo and a question and says
what it sees, with the tokens it spent. modelyard ships no client and makes no network call;
a team plugs in its own. ``Budgeted`` wraps one: before each call it checks the day's usage,
after it records what the call spent. Usage lives in a small SQLite file (one row per UTC
day), updated in an immediate transaction, so two processes (a labelling job and an audit
job, say) draw on one budget and neither can overspend it behind the other's back.

At the limit the hook warns once, then pauses: every further call that day raises
``BudgetError`` with the figures and the way out (wait for the next UTC day or raise
``daily_tokens``). A call in flight when the limit is crossed is still recorded, so the
file always holds what was really spent.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from modelyard.errors import BudgetError, ConfigError

log = logging.getLogger(__name__)

DEFAULT_DAILY_TOKENS = 10_000


@dataclass(frozen=True, kw_only=True)
class Answer:
    labels: dict[str, str]  # what the model says about the photo (label, reason, ...)
    tokens: int  # prompt and completion tokens the call spent


class Auditor(Protocol):
    def audit(self, image: bytes, question: str) -> Answer: ...


def utc_day() -> str:
    return datetime.now(UTC).date().isoformat()


class TokenBudget:
    """The day's token usage in ``path`` (SQLite), against ``daily_tokens``."""

    def __init__(
        self,
        path: Path,
        daily_tokens: int = DEFAULT_DAILY_TOKENS,
        today: Callable[[], str] = utc_day,
    ) -> None:
        if daily_tokens <= 0:
            raise ConfigError(f"daily_tokens: {daily_tokens} is not a positive token count")
        self.path, self.daily_tokens, self.today = path, daily_tokens, today
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS usage "
                "(day TEXT PRIMARY KEY, tokens INTEGER NOT NULL, calls INTEGER NOT NULL)"
            )

    def used(self, day: str | None = None) -> int:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT tokens FROM usage WHERE day = ?", (day or self.today(),)
            ).fetchone()
        return int(row[0]) if row else 0

    def check(self) -> int:
        """The tokens left today; raises ``BudgetError`` when none are."""
        used = self.used()
        if used >= self.daily_tokens:
            raise BudgetError(
                f"token budget for {self.today()} (UTC) spent: {used:,} of {self.daily_tokens:,} "
                f"tokens used ({self.path}); the audit hook is paused until the next UTC day, "
                "or raise daily_tokens"
            )
        return self.daily_tokens - used

    def charge(self, tokens: int) -> int:
        """Record ``tokens`` spent today; the day's total after it."""
        if tokens < 0:
            raise ConfigError(f"a call cannot spend {tokens} tokens")
        day = self.today()
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO usage (day, tokens, calls) VALUES (?, ?, 1) ON CONFLICT (day) "
                "DO UPDATE SET tokens = tokens + excluded.tokens, calls = calls + 1",
                (day, tokens),
            )
            total = int(
                conn.execute("SELECT tokens FROM usage WHERE day = ?", (day,)).fetchone()[0]
            )
            conn.execute("COMMIT")
        if total >= self.daily_tokens > total - tokens:
            log.warning(
                "token budget for %s (UTC) reached: %s of %s tokens; further calls pause until "
                "the next UTC day",
                day,
                f"{total:,}",
                f"{self.daily_tokens:,}",
            )
        return total

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()


class Budgeted:
    """An ``Auditor`` that spends no more than the budget allows."""

    def __init__(self, auditor: Auditor, budget: TokenBudget) -> None:
        self.auditor, self.budget = auditor, budget

    def audit(self, image: bytes, question: str) -> Answer:
        self.budget.check()
        answer = self.auditor.audit(image, question)
        self.budget.charge(answer.tokens)
        return answer
