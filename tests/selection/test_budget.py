"""The audit hook's daily token budget: it warns at the limit, pauses with a clear message,
starts again the next UTC day, and is one budget for every process sharing its file."""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from modelyard.errors import BudgetError
from modelyard.selection.budget import DEFAULT_DAILY_TOKENS, Answer, Budgeted, TokenBudget


class Counting:
    """A stand-in model: answers every photo, spending a fixed number of tokens."""

    def __init__(self, tokens: int) -> None:
        self.tokens, self.calls = tokens, 0

    def audit(self, image: bytes, question: str) -> Answer:
        self.calls += 1
        return Answer(labels={"keep": "yes"}, tokens=self.tokens)


def test_warns_at_the_limit_then_pauses_until_the_next_day(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    day = ["2026-12-04"]
    budget = TokenBudget(tmp_path / "usage.db", today=lambda: day[0])
    assert budget.daily_tokens == DEFAULT_DAILY_TOKENS == 10_000
    model = Counting(tokens=2_500)
    hook = Budgeted(model, budget)
    with caplog.at_level(logging.WARNING):
        for _ in range(4):
            hook.audit(b"photo", "is it sharp?")
    assert budget.used() == 10_000
    assert "token budget for 2026-12-04 (UTC) reached: 10,000 of 10,000" in caplog.text
    with pytest.raises(BudgetError, match=r"spent: 10,000 of 10,000 tokens used .*next UTC day"):
        hook.audit(b"photo", "is it sharp?")
    assert model.calls == 4  # the paused call never reached the model
    day[0] = "2026-12-05"
    hook.audit(b"photo", "is it sharp?")
    assert budget.used() == 2_500 and budget.used("2026-12-04") == 10_000


def _spend(path: str, tokens: int, calls: int, start: Any, out: Any) -> None:
    hook = Budgeted(Counting(tokens), TokenBudget(Path(path), daily_tokens=6_000))
    start.wait(timeout=60)  # both processes spend at once
    spent, paused = 0, False
    for _ in range(calls):
        try:
            spent += hook.audit(b"photo", "keep?").tokens
        except BudgetError:
            paused = True
            break
    out.put((spent, paused))


def test_two_processes_share_one_budget(tmp_path: Path) -> None:
    path = tmp_path / "usage.db"
    TokenBudget(path, daily_tokens=6_000)
    context = multiprocessing.get_context("spawn")
    queue, start = context.Queue(), context.Barrier(2)
    workers = [
        context.Process(target=_spend, args=(str(path), 100, 50, start, queue)) for _ in range(2)
    ]
    for w in workers:
        w.start()
    results = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    spent = sum(s for s, _ in results)
    # alone each would spend its 50 x 100 = 5,000 (10,000 together); one budget stops them
    # at 6,000, give or take the one call each process may have in flight
    assert any(paused for _, paused in results)
    assert spent == TokenBudget(path, daily_tokens=6_000).used()
    assert 6_000 <= spent <= 6_000 + 2 * 100


def test_a_budget_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not a positive token count"):
        TokenBudget(tmp_path / "u.db", daily_tokens=0)
