"""Choosing the review set: the largest disagreements first, then a seeded draw of the
images the model was unsure of, none twice."""

from __future__ import annotations

from typing import Any

from modelyard.evaluation.review import ReviewParams, pick


def candidate(i: int, disagreement: float, closeness: float | None) -> dict[str, Any]:
    return {
        "sample_id": f"s{i}",
        "image_path": f"images/{i:03d}.jpg",
        "disagreement": disagreement,
        "closeness": closeness,
    }


def test_top_disagreements_then_unsure_without_repeats() -> None:
    candidates = [candidate(i, float(i % 7), 0.05 if i % 3 == 0 else None) for i in range(40)]
    chosen = pick(candidates, ReviewParams(top=5, unsure=4, seed=1))
    assert [c["reason"] for c in chosen] == ["disagreement"] * 5 + ["unsure"] * 4
    assert [c["score"] for c in chosen[:5]] == [6.0] * 5
    assert len({c["sample_id"] for c in chosen}) == 9
    assert all(c["closeness"] is not None for c in chosen[5:])
    assert chosen == pick(candidates, ReviewParams(top=5, unsure=4, seed=1))
    assert chosen[5:] != pick(candidates, ReviewParams(top=5, unsure=4, seed=2))[5:]


def test_agreement_is_not_listed_as_disagreement() -> None:
    chosen = pick([candidate(0, 0.0, None), candidate(1, 0.0, 0.01)], ReviewParams(top=5))
    assert [c["reason"] for c in chosen] == ["unsure"]
