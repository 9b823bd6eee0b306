"""Photo embeddings, cached by image sha256: a torchvision backbone's pooled features beside
the hand-crafted ones (``selection.features``), one row per image.

The backbone is randomly initialised (seeded) unless ``weights`` names a local state dict or
a torchvision weights id (``ResNet18_Weights.IMAGENET1K_V1``) already in the torch hub cache;
nothing is downloaded. A random backbone still gives a fixed, deterministic projection of the
pixels; the hand-crafted features carry sharpness and exposure with no weights at all.

The cache is a folder per configuration (backbone, weights, input size: a different one gets
its own folder, never a mix) holding ``cache.json``, ``.npy`` shards of float32 rows and
``processed_images.jsonl`` (one line per image: sha256, file, shard, row, phash). A run
embeds only images whose sha256 is not there yet, in new shards: old shards are never
rewritten, and a shard and its lines are written before the next batch starts. ``verify``
re-computes a sample of cached rows and compares.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from modelyard.errors import ConfigError, IntegrityError
from modelyard.files import write_atomic, write_json
from modelyard.selection import features

log = logging.getLogger(__name__)

INDEX = "processed_images.jsonl"


@dataclass(frozen=True, kw_only=True)
class EmbedParams:
    backbone: str = "resnet18"  # resnet18 | mobilenet_v3_small (torchvision)
    weights: str | None = None  # a state dict path or a cached torchvision weights id
    image_size: int = 128
    batch_size: int = 32
    seed: int = 0  # the random backbone's weights
    verify_sample: int = 20

    def key(self) -> str:
        values = {k: v for k, v in asdict(self).items() if k not in ("batch_size", "verify_sample")}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True, kw_only=True)
class Photo:
    sha256: str
    file: str
    read: Callable[[], bytes]


class Embedder:
    """images -> rows of [backbone features, hand-crafted features]."""

    def __init__(self, params: EmbedParams) -> None:
        from modelyard.training.classifier import MEAN, STD, backbone

        torch.manual_seed(params.seed)
        net = backbone(params.backbone, resolve_weights(params.weights))
        if hasattr(net, "fc"):
            net.fc = torch.nn.Identity()
        else:
            net.classifier = torch.nn.Identity()
        self.net = net.eval()
        self.params = params
        self.mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(STD).view(1, 3, 1, 1)
        with torch.inference_mode():
            probe = torch.zeros(1, 3, params.image_size, params.image_size)
            self.backbone_dims = int(self.net(probe).shape[1])
        self.dims = self.backbone_dims + features.SIZE

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        size = self.params.image_size
        batch = np.stack(
            [
                np.asarray(
                    i.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), np.float32
                )
                for i in images
            ]
        )
        x = (torch.from_numpy(batch).permute(0, 3, 1, 2) / 255 - self.mean) / self.std
        with torch.inference_mode():
            deep = self.net(x).numpy()
        crafted = np.stack([features.vector(i) for i in images])
        out: np.ndarray = np.concatenate([deep, crafted], axis=1).astype(np.float32)
        return out


def resolve_weights(weights: str | None) -> str | None:
    """A local file as it is; a torchvision weights id as its file in the hub cache."""
    if not weights or Path(weights).is_file():
        return weights
    if "." in weights and "_Weights" in weights:
        from torchvision import models

        try:
            url = models.get_weight(weights).url
        except (ValueError, KeyError, AttributeError) as exc:
            raise ConfigError(
                f"embed.weights: '{weights}' is not a torchvision weights id"
            ) from exc
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        if cached.is_file():
            return str(cached)
        raise ConfigError(
            f"embed.weights: {weights} is not in the torch hub cache ({cached}); nothing is "
            "downloaded at run time: fetch it once, or give the path of a state dict"
        )
    raise ConfigError(f"embed.weights: {weights} is neither a file nor a torchvision weights id")


@dataclass(frozen=True, kw_only=True)
class Outcome:
    folder: Path
    embedded: int
    cached: int  # already there
    failed: list[dict[str, str]]
    dims: int


class Cache:
    def __init__(self, root: Path, params: EmbedParams) -> None:
        self.params = params
        self.folder = root / f"{params.backbone}-{params.key()}"

    @property
    def index_path(self) -> Path:
        return self.folder / INDEX

    def index(self) -> dict[str, dict[str, Any]]:
        if not self.index_path.is_file():
            return {}
        entries = {}
        for line in self.index_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                entries[entry["sha256"]] = entry
        return entries

    def vectors(self, shas: Sequence[str]) -> np.ndarray:
        """The cached rows of ``shas``, in order; a missing one is an error naming it."""
        index = self.index()
        missing = [s for s in shas if s not in index]
        if missing:
            raise IntegrityError(
                f"{self.folder}: no embedding of image {missing[0]} (and {len(missing) - 1} more); "
                "run `modelyard embed` first"
            )
        shards: dict[int, np.ndarray] = {}
        rows = []
        for sha in shas:
            entry = index[sha]
            if entry["shard"] not in shards:
                shards[entry["shard"]] = np.load(self._shard(entry["shard"]))
            rows.append(shards[entry["shard"]][entry["row"]])
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    def update(self, images: Sequence[Photo], embedder: Embedder) -> Outcome:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._describe(embedder)
        index = self.index()
        todo, seen = [], set(index)
        for image in images:
            if image.sha256 not in seen:
                todo.append(image)
                seen.add(image.sha256)
        failed: list[dict[str, str]] = []
        shard = 1 + max((e["shard"] for e in index.values()), default=-1)
        with _progress(len(todo)) as advance:
            for start in range(0, len(todo), self.params.batch_size):
                batch = todo[start : start + self.params.batch_size]
                opened, kept = [], []
                for image in batch:
                    try:
                        opened.append(open_rgb(image.read()))
                        kept.append(image)
                    except (OSError, ValueError) as exc:
                        failed.append(
                            {"sha256": image.sha256, "file": image.file, "reason": str(exc)}
                        )
                if kept:
                    self._write_shard(shard, kept, opened, embedder.embed(opened))
                    shard += 1
                advance(len(batch))
        embedded = len(todo) - len(failed)
        log.info(
            "embeddings: %d new, %d cached, %d failed (%s)",
            embedded,
            len(images) - len(todo),
            len(failed),
            self.folder,
        )
        return Outcome(
            folder=self.folder,
            embedded=embedded,
            cached=len(images) - len(todo),
            failed=failed,
            dims=embedder.dims,
        )

    def verify(self, images: Sequence[Photo], embedder: Embedder) -> dict[str, Any]:
        """Re-compute ``verify_sample`` cached rows (seeded) and compare with the cache."""
        index = self.index()
        cached = [i for i in images if i.sha256 in index]
        rng = np.random.default_rng(self.params.seed)
        picks = [
            cached[k] for k in sorted(rng.permutation(len(cached))[: self.params.verify_sample])
        ]
        if not picks:
            return {"checked": 0, "max_abs_diff": 0.0, "passed": False}
        fresh = embedder.embed([open_rgb(i.read()) for i in picks])
        stored = self.vectors([i.sha256 for i in picks])
        diff = float(np.max(np.abs(fresh - stored)))
        scale = float(np.max(np.abs(stored))) or 1.0
        return {"checked": len(picks), "max_abs_diff": diff, "passed": diff <= 1e-4 * scale}

    def _write_shard(
        self, shard: int, images: Sequence[Photo], opened: Sequence[Image.Image], rows: np.ndarray
    ) -> None:
        buffer = io.BytesIO()
        np.save(buffer, rows)
        write_atomic(self._shard(shard), buffer.getvalue())
        lines = [
            json.dumps(
                {
                    "sha256": i.sha256,
                    "file": i.file,
                    "shard": shard,
                    "row": r,
                    "phash": features.phash(o),
                }
            )
            for r, (i, o) in enumerate(zip(images, opened, strict=True))
        ]
        with self.index_path.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")

    def _describe(self, embedder: Embedder) -> None:
        meta = {
            **asdict(self.params),
            "key": self.params.key(),
            "dims": embedder.dims,
            "backbone_dims": embedder.backbone_dims,
            "crafted": list(features.NAMES),
        }
        path = self.folder / "cache.json"
        if not path.is_file():
            write_json(path, meta)

    def _shard(self, shard: int) -> Path:
        return self.folder / f"shard_{shard:05d}.npy"


def open_rgb(data: bytes) -> Image.Image:
    """An image's bytes as a loaded RGB image (Pillow's error when they are not one)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal; nothing in a log."""
    from rich.progress import Progress

    with Progress(disable=not sys.stderr.isatty() or total == 0, transient=True) as bar:
        task = bar.add_task("embedding", total=total)
        yield lambda n: bar.advance(task, n)
