"""RT-DETRv2 with a ResNet-18 backbone (the "S" size), built from a config, as a
LightningModule.

Random init by default; ``weights`` takes a local folder or a hub id of a transformers
RT-DETRv2 checkpoint (its class head is re-sized to our classes). The model predicts
``num_queries`` boxes per image; validation decodes the top-scoring ones and scores them with
COCO mAP (torchmetrics, pycocotools backend).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import lightning as L
import torch
from torchmetrics.detection import MeanAveragePrecision
from transformers import RTDetrResNetConfig, RTDetrV2Config, RTDetrV2ForObjectDetection

from modelyard.training.config import RtDetrParams
from modelyard.training.detectors.coco import Target


def build(classes: tuple[str, ...], shape: RtDetrParams, weights: str | None) -> torch.nn.Module:
    """The network: from ``weights`` (a path or hub id) when given, else randomly initialised."""
    labels: dict[str, Any] = {
        "num_labels": len(classes),
        "id2label": dict(enumerate(classes)),
        "label2id": {c: i for i, c in enumerate(classes)},
    }
    if weights:
        return RTDetrV2ForObjectDetection.from_pretrained(
            weights, ignore_mismatched_sizes=True, **labels
        )
    backbone: dict[str, Any] = {  # ResNet-18: basic blocks, two per stage
        "depths": [2, 2, 2, 2],
        "layer_type": "basic",
        "hidden_sizes": [64, 128, 256, 512],
        "embedding_size": 64,
        "downsample_in_first_stage": False,
        "out_features": ["stage2", "stage3", "stage4"],
    }
    network: dict[str, Any] = {
        "backbone_config": RTDetrResNetConfig(**backbone),
        "encoder_in_channels": [128, 256, 512],
        "num_queries": shape.num_queries,
        "num_denoising": shape.num_denoising,
        "decoder_layers": shape.decoder_layers,
        "d_model": shape.d_model,
        "encoder_hidden_dim": shape.d_model,
        "decoder_in_channels": [shape.d_model] * 3,
        "decoder_ffn_dim": shape.ffn_dim,
        "encoder_ffn_dim": shape.ffn_dim,
        "freeze_backbone_batch_norms": False,  # random init: the batch statistics must learn
        **labels,
    }
    return RTDetrV2ForObjectDetection(RTDetrV2Config(**network))


def decode(
    logits: torch.Tensor, boxes: torch.Tensor, sizes: torch.Tensor, top_k: int = 100
) -> list[dict[str, torch.Tensor]]:
    """Per image: the ``top_k`` (query, class) pairs by sigmoid score, boxes as pixel xyxy in
    the image's original size (``sizes`` rows are (height, width))."""
    batch, queries, n_cls = logits.shape
    scores, flat = logits.sigmoid().flatten(1).topk(min(top_k, queries * n_cls), dim=1)
    query, label = flat // n_cls, flat % n_cls
    cxcywh = boxes.gather(1, query.unsqueeze(-1).expand(-1, -1, 4))
    cx, cy, w, h = cxcywh.unbind(-1)
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    scale = torch.stack([sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]], dim=-1)
    xyxy = xyxy * scale.unsqueeze(1)
    return [{"boxes": xyxy[i], "scores": scores[i], "labels": label[i]} for i in range(batch)]


def ground_truth(targets: list[Target]) -> list[dict[str, torch.Tensor]]:
    """Targets as pixel xyxy boxes, the form MeanAveragePrecision takes."""
    out = []
    for t in targets:
        h, w = t["orig_size"].tolist()
        cx, cy, bw, bh = t["boxes"].unbind(-1)
        xyxy = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1)
        out.append({"boxes": xyxy * torch.tensor([w, h, w, h]), "labels": t["class_labels"]})
    return out


class RtDetrModule(L.LightningModule):
    """Training (the model's own Hungarian-matched loss) and validation (COCO mAP)."""

    def __init__(
        self,
        *,
        classes: tuple[str, ...],
        shape: RtDetrParams | Mapping[str, Any],
        weights: str | None = None,
        lr: float = 2e-4,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__()
        if not isinstance(shape, RtDetrParams):
            shape = RtDetrParams(**shape)
        # plain values only: checkpoints must load with torch.load(weights_only=True)
        self.save_hyperparameters(
            {"classes": list(classes), "shape": asdict(shape), "weights": weights, "lr": lr,
             "weight_decay": weight_decay}
        )  # fmt: skip
        self.model = build(tuple(classes), shape, weights)
        self.lr = lr
        self.weight_decay = weight_decay
        self.val_map = MeanAveragePrecision(iou_type="bbox", backend="pycocotools")
        self.test_map = MeanAveragePrecision(iou_type="bbox", backend="pycocotools")

    def forward(self, pixel_values: torch.Tensor) -> Any:
        return self.model(pixel_values=pixel_values)

    def training_step(self, batch: tuple[torch.Tensor, list[Target]], _: int) -> torch.Tensor:
        images, targets = batch
        labels = [{"class_labels": t["class_labels"], "boxes": t["boxes"]} for t in targets]
        loss: torch.Tensor = self.model(pixel_values=images, labels=labels).loss
        self.log("train_loss", loss, prog_bar=True, batch_size=len(targets))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, list[Target]], _: int) -> None:
        self._score(batch, self.val_map)

    def on_validation_epoch_end(self) -> None:
        self._log_map("val", self.val_map)

    def test_step(self, batch: tuple[torch.Tensor, list[Target]], _: int) -> None:
        self._score(batch, self.test_map)

    def on_test_epoch_end(self) -> None:
        self._log_map("test", self.test_map)

    def _score(
        self, batch: tuple[torch.Tensor, list[Target]], metric: MeanAveragePrecision
    ) -> None:
        images, targets = batch
        out = self.model(pixel_values=images)
        sizes = torch.stack([t["orig_size"] for t in targets])
        metric.update(decode(out.logits, out.pred_boxes, sizes), ground_truth(targets))

    def _log_map(self, split: str, metric: MeanAveragePrecision) -> None:
        result = metric.compute()
        self.log(f"{split}_map50", result["map_50"].float(), prog_bar=split == "val")
        self.log(f"{split}_map50_95", result["map"].float())
        metric.reset()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


class _FixedPositionEmbedding(torch.nn.Module):
    """The encoder's sine position embedding for one input size, as a constant."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, width: int, height: int, device: Any, dtype: torch.dtype) -> torch.Tensor:
        table = self.get_buffer("table")
        return table.to(dtype)


class ExportHead(torch.nn.Module):
    """The network for one square input size, as exporters want it: ``images`` (N, 3, S, S)
    in [0, 1] -> ``logits`` (N, queries, classes) and ``boxes`` (N, queries, 4; normalised
    cx, cy, w, h).

    transformers computes the encoder's position embedding and the decoder's anchors from
    the feature-map shapes at run time, with integer arithmetic that converters trip over
    (CoreML: a matmul of int32 by fp32). For a fixed size both are constants: they are
    computed once here and stored, which leaves the outputs exactly as they were."""

    def __init__(self, network: torch.nn.Module, image_size: int) -> None:
        super().__init__()
        network.train(False)
        self.network = network
        tables: dict[str, torch.Tensor] = {}
        hooks = [
            module.register_forward_hook(
                lambda _m, _a, out, name=name: tables.__setitem__(name, out.detach())
            )
            for name, module in network.named_modules()
            if type(module).__name__ == "RTDetrV2SinePositionEmbedding"
        ]
        with torch.no_grad():
            network(pixel_values=torch.zeros(1, 3, image_size, image_size))
        for hook in hooks:
            hook.remove()
        for name, table in tables.items():
            parent, _, attr = name.rpartition(".")
            setattr(network.get_submodule(parent), attr, _FixedPositionEmbedding(table))
        model: Any = network.get_submodule("model")
        model.config.anchor_image_size = [image_size, image_size]
        model.anchors, model.valid_mask = model.generate_anchors(dtype=torch.float32)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.network(pixel_values=images)
        return out.logits, out.pred_boxes
