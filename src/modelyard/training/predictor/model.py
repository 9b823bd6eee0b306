"""The MLP and its training: one network per codec (or per LOSO fold).

The network carries its own normalisation as buffers — the feature means and deviations,
and the VMAF mean and deviation — fitted on the rows it is trained on (a fold's training
sources only), so the exported ONNX takes raw features and returns VMAF. Training runs a
fixed number of epochs with Lightning, seeded: the same rows and params give the same
weights.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from modelyard.training.predictor.config import PredictorParams
from modelyard.training.process import settings_kept

INPUT = "features"
OUTPUT = "vmaf"


class PredictorNetwork(nn.Module):
    """raw features (N x F, float32) -> VMAF (N)."""

    x_mean: torch.Tensor
    x_std: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor

    def __init__(self, n_features: int, hidden: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.GELU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        self.register_buffer("x_mean", torch.zeros(n_features))
        self.register_buffer("x_std", torch.ones(n_features))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))

    def fit_normalisation(self, x: np.ndarray, y: np.ndarray) -> None:
        std = x.std(axis=0)
        self.x_mean.copy_(torch.from_numpy(x.mean(axis=0)))
        self.x_std.copy_(torch.from_numpy(np.where(std > 1e-8, std, 1.0).astype(np.float32)))
        self.y_mean.fill_(float(y.mean()))
        self.y_std.fill_(float(y.std()) or 1.0)

    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.mlp((x - self.x_mean) / self.x_std).squeeze(-1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.standardised(x) * self.y_std + self.y_mean


class PredictorModule(L.LightningModule):
    def __init__(self, network: PredictorNetwork, params: PredictorParams) -> None:
        super().__init__()
        self.network = network
        self.params = params

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        target = (y - self.network.y_mean) / self.network.y_std
        loss = nn.functional.mse_loss(self.network.standardised(x), target)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.network.parameters(),
            lr=self.params.learning_rate,
            weight_decay=self.params.weight_decay,
        )


def train(
    x: np.ndarray, y: np.ndarray, params: PredictorParams, *, epochs: int | None = None
) -> PredictorNetwork:
    """A network trained on (``x``, ``y``) for ``epochs`` (default: the params')."""
    torch.manual_seed(params.seed)
    network = PredictorNetwork(x.shape[1], params.hidden)
    network.fit_normalisation(x, y)
    data = DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=params.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(params.seed),
    )
    with settings_kept(), _quiet_lightning():
        trainer = L.Trainer(
            max_epochs=epochs or params.epochs,
            accelerator="cpu",
            devices=1,
            deterministic=True,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(PredictorModule(network, params), train_dataloaders=data)
    return network.eval()


def predict(network: PredictorNetwork, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        out: np.ndarray = network(torch.from_numpy(x)).numpy()
    return out


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's per-fit notices (accelerators, few batches, workers) at warning level."""
    names = ("lightning.pytorch", "lightning.fabric")
    levels = {n: logging.getLogger(n).level for n in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*number of training batches.*")
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
