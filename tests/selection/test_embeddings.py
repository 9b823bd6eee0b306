"""Embeddings: the hand-crafted features measure what they say, the cache embeds only new
images (old shards untouched), verify catches a changed row, weights come from a local file
or the hub cache and are never downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageFilter

from modelyard.errors import ConfigError, IntegrityError
from modelyard.selection import features, synthetic
from modelyard.selection.embeddings import Cache, Embedder, EmbedParams, Photo, resolve_weights

PARAMS = EmbedParams(image_size=64, batch_size=4)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("selection")
    synthetic.generate(out, synthetic.SelectionConfig(groups=4, seed=5))
    return sorted((out / "images").glob("*.jpg"))


def photos(paths: list[Path]) -> list[Photo]:
    import hashlib

    return [
        Photo(sha256=hashlib.sha256(p.read_bytes()).hexdigest(), file=p.name, read=p.read_bytes)
        for p in paths
    ]


def test_hand_crafted_features_measure_sharpness_exposure_and_colour(shots: list[Path]) -> None:
    image = Image.open(shots[0]).convert("RGB")
    sharp, blurred = (
        features.vector(image),
        features.vector(image.filter(ImageFilter.GaussianBlur(3))),
    )
    blur = features.NAMES.index("blur")
    assert blurred[blur] < sharp[blur]
    bright = features.vector(ImageEnhance.Brightness(image).enhance(1.8))
    at = features.NAMES.index("brightness")
    assert bright[at] > sharp[at]
    assert bright[features.NAMES.index("blown")] >= sharp[features.NAMES.index("blown")]
    assert sharp.shape == (features.SIZE,)
    for c in range(3):
        assert sharp[c * features.BINS : (c + 1) * features.BINS].sum() == pytest.approx(1.0)


def test_phash_puts_a_burst_closer_than_other_scenes(shots: list[Path]) -> None:
    by_group: dict[str, list[str]] = {}
    for p in shots:
        by_group.setdefault(p.name.rsplit("_", 1)[0], []).append(features.phash(Image.open(p)))
    groups = list(by_group.values())
    within = np.mean([features.hamming(g[0], h) for g in groups for h in g[1:]])
    across = np.mean([features.hamming(a[0], b[0]) for a in groups for b in groups if a is not b])
    assert within < across


def test_the_cache_embeds_only_new_images(tmp_path: Path, shots: list[Path]) -> None:
    embedder = Embedder(PARAMS)
    cache = Cache(tmp_path, PARAMS)
    first = cache.update(photos(shots[:6]), embedder)
    assert (first.embedded, first.cached, first.dims) == (6, 0, 512 + features.SIZE)
    shard_bytes = {p.name: p.read_bytes() for p in cache.folder.glob("shard_*.npy")}
    second = cache.update(photos(shots), embedder)
    assert (second.embedded, second.cached) == (len(shots) - 6, 6)
    for name, data in shard_bytes.items():  # old shards are never rewritten
        assert (cache.folder / name).read_bytes() == data
    index = cache.index()
    assert len(index) == len(shots)
    assert {e["file"] for e in index.values()} == {p.name for p in shots}
    rows = cache.vectors([p.sha256 for p in photos(shots)])
    fresh = embedder.embed([Image.open(p).convert("RGB") for p in shots])
    np.testing.assert_allclose(rows, fresh, rtol=1e-5, atol=1e-6)
    assert cache.verify(photos(shots), embedder)["passed"]


def test_verify_catches_a_changed_row_and_a_missing_image_is_named(
    tmp_path: Path, shots: list[Path]
) -> None:
    embedder = Embedder(PARAMS)
    cache = Cache(tmp_path, PARAMS)
    cache.update(photos(shots[:4]), embedder)
    shard = cache.folder / "shard_00000.npy"
    rows = np.load(shard)
    rows[0, 0] += 1.0
    np.save(shard, rows)
    check = cache.verify(photos(shots[:4]), embedder)
    assert check["checked"] == 4 and not check["passed"]
    with pytest.raises(IntegrityError, match="no embedding of image"):
        cache.vectors([photos(shots[5:6])[0].sha256])


def test_an_unreadable_image_is_reported_and_the_rest_embedded(
    tmp_path: Path, shots: list[Path]
) -> None:
    broken = Photo(sha256="0" * 64, file="broken.jpg", read=lambda: b"not an image")
    outcome = Cache(tmp_path, PARAMS).update([broken, *photos(shots[:3])], Embedder(PARAMS))
    assert outcome.embedded == 3
    assert [f["file"] for f in outcome.failed] == ["broken.jpg"]


def test_another_configuration_gets_its_own_folder(tmp_path: Path) -> None:
    other = EmbedParams(image_size=96)
    assert Cache(tmp_path, PARAMS).folder != Cache(tmp_path, other).folder
    assert (
        Cache(tmp_path, PARAMS).folder
        == Cache(tmp_path, EmbedParams(image_size=64, batch_size=9)).folder
    )


def test_weights_from_a_local_file_and_never_downloaded(
    tmp_path: Path, shots: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchvision import models

    torch.manual_seed(123)
    path = tmp_path / "resnet18.pt"
    torch.save(models.resnet18().state_dict(), path)
    image = [Image.open(shots[0]).convert("RGB")]
    loaded = Embedder(EmbedParams(image_size=64, weights=str(path))).embed(image)
    default = Embedder(PARAMS).embed(image)
    assert not np.allclose(loaded[:, :512], default[:, :512])
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ConfigError, match="not in the torch hub cache"):
        resolve_weights("ResNet18_Weights.IMAGENET1K_V1")
    with pytest.raises(ConfigError, match="neither a file nor"):
        resolve_weights(str(tmp_path / "missing.pt"))
