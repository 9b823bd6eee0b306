"""The group ranker: a score per photo such that, within a burst, the photo a person kept
scores highest.

Loss: listwise, the softmax cross-entropy of each group's scores against its kept photo
(ListNet's top-one probability, the Plackett-Luce first choice). Every group in the data has
exactly one kept photo and the task is to pick it, so the loss is the task: it pushes the
kept photo above all of its group at once, where a pairwise loss weighs each of the n - 1
pairs alike, and it needs no extra library (LightGBM's lambdarank would, and an ONNX
converter besides). The scorer is a small MLP over a photo's cached embedding, its input
standardisation fitted on the training split and carried inside the network; the ONNX takes
one burst's raw features (``features``, N x F) and returns ``score`` (N).

``stage`` is not an input by default: a photo's stage is where the workflow took it, partly
because of the decision being learnt, and a model that leans on it learns the playbook's
trap. The baseline "always the highest stage" is measured beside the ranker instead, and the
gate fails unless the ranker beats it by a margin.

Metrics per split: selection accuracy (the top-scored photo is the kept one) and NDCG@3 (gain
1 for the kept photo), with the two baselines computed exactly: random order, and the highest
stage first with ties in random order (expected values, no sampling).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from modelyard.errors import ConfigError
from modelyard.selection.data import Shot

INPUT, OUTPUT = "features", "score"


@dataclass(frozen=True, kw_only=True)
class RankerParams:
    hidden: tuple[int, ...] = (16,)
    epochs: int = 200
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    dropout: float = 0.1
    inputs: str = "crafted"  # crafted | all (with the backbone's: for pretrained weights)
    seed: int = 0
    use_stage: bool = False  # see the module's docstring

    def __post_init__(self) -> None:
        if self.inputs not in ("crafted", "all"):
            raise ConfigError(f"ranker.inputs: '{self.inputs}' is not crafted or all")
        if self.epochs < 1:
            raise ConfigError(f"ranker.epochs: expected >= 1, got {self.epochs}")


class ScoreNetwork(nn.Module):
    """One burst (N photos x F raw features) -> a score per photo.

    Each photo is seen twice: as it is, and against its burst (its features less the burst's
    mean) — a person keeps the sharpest shot of a burst, whatever the scene's own sharpness.
    So one call scores one burst; the ONNX does the centring itself."""

    x_mean: torch.Tensor
    x_std: torch.Tensor

    def __init__(self, n_features: int, params: RankerParams) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 2 * n_features
        for h in params.hidden:
            layers += [nn.Linear(width, h), nn.GELU(), nn.Dropout(params.dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("x_mean", torch.zeros(2 * n_features))
        self.register_buffer("x_std", torch.ones(2 * n_features))

    @staticmethod
    def pair(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x - x.mean(dim=0, keepdim=True), x], dim=1)

    def head(self, paired: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.mlp((paired - self.x_mean) / self.x_std).squeeze(-1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pair(x))


def train(
    x: np.ndarray, groups: Sequence[Sequence[int]], kept: Sequence[int], params: RankerParams
) -> ScoreNetwork:
    """``groups``: row indices of each group; ``kept``: the kept row of each group."""
    torch.manual_seed(params.seed)
    network = ScoreNetwork(x.shape[1], params)
    features = torch.from_numpy(x)
    index = [torch.tensor(list(g)) for g in groups]
    paired = torch.cat([ScoreNetwork.pair(features[i]) for i in index])
    std = paired.std(dim=0)
    network.x_mean.copy_(paired.mean(dim=0))
    network.x_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
    offsets = np.cumsum([0, *(len(g) for g in groups)])
    spans = [torch.arange(offsets[j], offsets[j + 1]) for j in range(len(groups))]
    target = [list(g).index(k) for g, k in zip(groups, kept, strict=True)]
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    network.train()
    for _ in range(params.epochs):
        optimiser.zero_grad()
        all_scores = network.head(paired)
        loss = torch.stack(
            [
                -torch.log_softmax(all_scores[span], dim=0)[t]
                for span, t in zip(spans, target, strict=True)
            ]
        ).mean()
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
    return network.eval()


def score_groups(
    network: ScoreNetwork, x: np.ndarray, groups: Sequence[Sequence[int]]
) -> list[np.ndarray]:
    """Each group's scores, one burst per call (as a device scores one)."""
    return [scores(network, x[list(g)]) for g in groups]


def scores(network: ScoreNetwork, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        out: np.ndarray = network(torch.from_numpy(x)).numpy()
    return out


def _gain(rank: int) -> float:
    return 1 / math.log2(rank + 1) if rank <= 3 else 0.0


def ranking_metrics(group_scores: Sequence[np.ndarray], kept: Sequence[int]) -> dict[str, float]:
    """Selection accuracy and NDCG@3 of scored groups (ties broken against the kept photo)."""
    hits, ndcg = [], []
    for s, k in zip(group_scores, kept, strict=True):
        rank = 1 + int(np.sum(s > s[k])) + int(np.sum(np.delete(s, k) == s[k]))
        hits.append(float(rank == 1))
        ndcg.append(_gain(rank))  # the ideal DCG of one relevant item is 1
    return {"selection_accuracy": float(np.mean(hits)), "ndcg3": float(np.mean(ndcg))}


def random_baseline(sizes: Sequence[int]) -> dict[str, float]:
    """Expected figures of a random order: the kept photo at each rank with chance 1/n."""
    return {
        "selection_accuracy": float(np.mean([1 / n for n in sizes])),
        "ndcg3": float(np.mean([sum(_gain(r) for r in range(1, n + 1)) / n for n in sizes])),
    }


def stage_baseline(groups: Sequence[Sequence[Shot]]) -> dict[str, float]:
    """Expected figures of "the highest stage first", ties in random order."""
    hits, ndcg = [], []
    for shots in groups:
        stages = np.asarray([s.stage if s.stage is not None else -1 for s in shots])
        k = next(i for i, s in enumerate(shots) if s.kept)
        above = int(np.sum(stages > stages[k]))
        ties = int(np.sum(stages == stages[k]))
        ranks = range(above + 1, above + ties + 1)
        hits.append(1.0 / ties if above == 0 else 0.0)
        ndcg.append(sum(_gain(r) for r in ranks) / ties)
    return {"selection_accuracy": float(np.mean(hits)), "ndcg3": float(np.mean(ndcg))}
