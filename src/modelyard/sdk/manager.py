"""ModelManager: a device's side of bundle delivery.

    manager = ModelManager(base_url, api_key, cache_dir, policy_id=..., device_id=...,
                           platform="android", public_key=Path("bundle_signing.pub.pem"))
    bundle = manager.get_model(DownloadMode.LOCAL_MODEL_UPDATE_IN_BACKGROUND)

``check_for_updates`` asks ``/api/v1/models/latest`` with the last ETag (304: nothing new)
and verifies the signed manifest before believing anything in the answer: its ed25519
signature against the pinned public key, its expiry, that every artifact listed is in it
with the same size and sha256, and that its ``bundle_version`` is not lower than the
highest this device has held in that tier unless the manifest announces a rollback.

``download`` fetches the files (the primary model of each format, and the support files),
resuming a partial file with ``Range``/``If-Range``, checks each sha256 against the
manifest, and only then swaps the bundle into ``cache_dir/current`` (a symlink replaced
atomically); the bundle before it stays as ``cache_dir/previous`` for ``rollback``.

This module imports nothing of the server: httpx, cryptography and the standard library.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from modelyard.errors import DeliveryError, IntegrityError, SignatureError
from modelyard.signing import load_public, verify

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
Progress = Callable[[str, int, int], None]  # (artifact name, bytes so far, total bytes)


class DownloadMode(enum.Enum):
    """As the hosted model downloaders name them."""

    LOCAL_MODEL = "local"  # the bundle on the device; download only when there is none
    LATEST_MODEL = "latest"  # check and download the newest before returning
    LOCAL_MODEL_UPDATE_IN_BACKGROUND = "background"  # local now, update in a thread


@dataclass(frozen=True, kw_only=True)
class Update:
    """A verified answer of /latest that differs from the bundle in ``current``."""

    latest: dict[str, Any]
    manifest: dict[str, Any]
    etag: str | None

    @property
    def label(self) -> str:
        return f"{self.manifest['policy_id']}/v{self.manifest['bundle_version']}"


@dataclass(frozen=True, kw_only=True)
class LocalBundle:
    """A bundle on the device: its folder, its verified manifest, its files by name."""

    path: Path
    manifest: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def bundle_version(self) -> int:
        return int(self.manifest["bundle_version"])

    @property
    def tier(self) -> str:
        return str(self.manifest["bundle_tier"])

    @property
    def bundle_id(self) -> str:
        return str(self.manifest["bundle_id"])

    def model(self, fmt: str | None = None) -> Path:
        """The primary model file (of ``fmt``, when the bundle holds several formats)."""
        for item in self.manifest["artifacts"]:
            usable = item["role"] == "model" and item["primary"] and item["name"] in self.files
            if usable and (fmt is None or item["format"] == fmt):
                return self.files[item["name"]]
        raise DeliveryError(f"{self.path}: no primary model of format {fmt or 'any'} here")

    def verify(self) -> None:
        """Every file's sha256 against the manifest again (a device's storage can rot)."""
        signed = {a["name"]: a for a in self.manifest["artifacts"]}
        for name, path in self.files.items():
            if _sha256(path) != signed[name]["sha256"]:
                raise IntegrityError(f"{path}: sha256 differs from the manifest's for {name}")


class ModelManager:
    def __init__(
        self, base_url: str, api_key: str, cache_dir: Path, *, policy_id: str, device_id: str,
        platform: str, public_key: str | bytes | Path, app_version: str | None = None,
        os_version: str | None = None, formats: tuple[str, ...] | None = None,
        attributes: Mapping[str, str] | None = None, client: httpx.Client | None = None,
        timeout: float = 30.0,
    ) -> None:  # fmt: skip
        self.cache_dir = Path(cache_dir).absolute()
        self.policy_id, self.device_id, self.platform = policy_id, device_id, platform
        self.query = {
            "policy_id": policy_id, "device_id": device_id, "platform": platform,
            **({"app_version": app_version} if app_version else {}),
            **({"os_version": os_version} if os_version else {}),
            **({"formats": ",".join(formats)} if formats else {}),
            **dict(attributes or {}),
        }  # fmt: skip
        self._public = load_public(public_key)
        self._http = client or httpx.Client(base_url=base_url, timeout=timeout)
        self._http.headers["Authorization"] = f"Bearer {api_key}"
        self._lock = threading.Lock()
        self.background: threading.Thread | None = None
        (self.cache_dir / "bundles").mkdir(parents=True, exist_ok=True)
        (self.cache_dir / "partial").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ state

    def _state(self) -> dict[str, Any]:
        path = self.cache_dir / "state.json"
        if not path.is_file():
            return {"highest": {}, "etag": None}
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return state

    def _save_state(self, state: dict[str, Any]) -> None:
        path = self.cache_dir / "state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    def current(self) -> LocalBundle | None:
        return self._local(self.cache_dir / "current")

    def previous(self) -> LocalBundle | None:
        return self._local(self.cache_dir / "previous")

    def _local(self, link: Path) -> LocalBundle | None:
        if not link.exists():
            return None
        folder = link.resolve()
        text = (folder / "manifest.json").read_text(encoding="utf-8")
        signature = (folder / "manifest.sig").read_text(encoding="ascii").strip()
        manifest = json.loads(text)
        try:
            verify(text, signature, self._public)
        except SignatureError as exc:
            if "expired" not in str(exc):  # an expired bundle still runs until replaced
                raise
        files = {a["name"]: folder / "files" / a["name"] for a in manifest["artifacts"]}
        return LocalBundle(
            path=folder, manifest=manifest, files={k: v for k, v in files.items() if v.is_file()}
        )

    # ------------------------------------------------------------------ the API

    def check_for_updates(self) -> Update | None:
        """The newer (or rolled-back-to) bundle the server has for this device, verified;
        None when the device has it already (or the server answers 304)."""
        state = self._state()
        headers = {"If-None-Match": state["etag"]} if state.get("etag") else {}
        response = self._get("/api/v1/models/latest", params=self.query, headers=headers)
        if response.status_code == 304:
            return None
        latest = response.json()
        manifest = self._verified(latest, state)
        current = self.current()
        etag = response.headers.get("etag")
        held = current is not None and (current.bundle_id, current.tier) == (
            manifest["bundle_id"],
            manifest["bundle_tier"],
        )
        if held:
            state["etag"] = etag
            self._save_state(state)
            return None
        return Update(latest=latest, manifest=manifest, etag=etag)

    def _verified(self, latest: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        manifest = verify(latest["manifest"], latest["signature"], self._public)
        for key in ("bundle_id", "policy_id", "bundle_version", "bundle_tier"):
            if str(manifest[key]) != str(latest[key]):
                raise SignatureError(
                    f"/latest says {key} {latest[key]!r}, its signed manifest {manifest[key]!r}"
                )
        signed = {a["name"]: a for a in manifest["artifacts"]}
        for item in latest["artifacts"]:
            entry = signed.get(item["name"])
            if entry is None or (entry["sha256"], entry["size_bytes"]) != (
                item["sha256"],
                item["size_bytes"],
            ):
                raise SignatureError(
                    f"/latest lists {item['name']} with sha256 {item['sha256'][:12]}..., which "
                    "the signed manifest does not"
                )
            if item.get("role") == "model" and entry.get("verified") is False:
                if item.get("verified") is not False:
                    raise SignatureError(
                        f"/latest says {item['name']} is verified; its signed manifest does not"
                    )
                log.warning(
                    "%s is not verified (%s): its parity was never checked in its runtime; "
                    "the server offers it because its operator allows unverified %s",
                    item["name"], entry.get("verification"), item.get("format"),
                )  # fmt: skip
        highest = int(state["highest"].get(manifest["bundle_tier"], 0))
        if int(manifest["bundle_version"]) < highest and not manifest.get("rollback"):
            raise SignatureError(
                f"{manifest['policy_id']} {manifest['bundle_tier']}: the server offers "
                f"v{manifest['bundle_version']}, lower than v{highest} this device held, and "
                "its manifest does not announce a rollback; refused (a rollback attack)"
            )
        return manifest

    def download(
        self, update: Update | None = None, progress: Progress | None = None
    ) -> LocalBundle:
        """Fetch, verify and swap in ``update`` (by default the server's latest)."""
        update = update or self.check_for_updates()
        if update is None:
            current = self.current()
            if current is None:
                raise DeliveryError("the server answered 304 but this device holds no bundle")
            return current
        with self._lock:
            return self._install(update, progress)

    def _install(self, update: Update, progress: Progress | None) -> LocalBundle:
        manifest = update.manifest
        wanted = self._wanted(update.latest)
        name = f"{manifest['policy_id']}-v{manifest['bundle_version']}-{manifest['bundle_id'][:8]}"
        staging = self.cache_dir / "bundles" / f".{name}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        held = self._held()
        for item in wanted:
            target = staging / "files" / item["name"]
            target.parent.mkdir(parents=True, exist_ok=True)
            if item["sha256"] in held:  # the same bytes in the bundle held now: not fetched
                shutil.copyfile(held[item["sha256"]], target)
                if _sha256(target) == item["sha256"]:
                    continue
            os.replace(self._fetch(item, progress), target)
        (staging / "manifest.json").write_text(update.latest["manifest"], encoding="utf-8")
        (staging / "manifest.sig").write_text(update.latest["signature"], encoding="ascii")
        (staging / "latest.json").write_text(json.dumps(update.latest), encoding="utf-8")
        final = self.cache_dir / "bundles" / name
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        self._swap(final)
        state = self._state()
        tier = manifest["bundle_tier"]
        state["highest"][tier] = max(int(state["highest"].get(tier, 0)), manifest["bundle_version"])
        state["etag"] = update.etag
        self._save_state(state)
        log.info("%s %s installed (%d files verified)", update.label, tier, len(wanted))
        installed = self.current()
        if installed is None:  # pragma: no cover - just swapped in
            raise DeliveryError(f"{final}: swapped in but not readable")
        self._prune()
        return installed

    def _held(self) -> dict[str, Path]:
        """The files of the bundles on the device, by sha256."""
        out: dict[str, Path] = {}
        for bundle in (self.previous(), self.current()):
            if bundle is not None:
                signed = {a["name"]: a["sha256"] for a in bundle.manifest["artifacts"]}
                out |= {signed[name]: path for name, path in bundle.files.items()}
        return out

    def _wanted(self, latest: dict[str, Any]) -> list[dict[str, Any]]:
        """The primary model of each format offered, and every support file."""
        return [a for a in latest["artifacts"] if a["role"] != "model" or a["primary"]]

    def _fetch(self, item: dict[str, Any], progress: Progress | None) -> Path:
        """One file into partial/<sha256>.part, resumed where an earlier try stopped; its
        sha256 checked before it is returned."""
        part = self.cache_dir / "partial" / f"{item['sha256']}.part"
        have = part.stat().st_size if part.exists() else 0
        if have > item["size_bytes"]:
            part.unlink()
            have = 0
        if have < item["size_bytes"]:
            headers = {"If-Range": f'"{item["sha256"]}"', "Range": f"bytes={have}-"} if have else {}
            with self._http.stream("GET", item["url"], headers=headers) as response:
                if response.status_code not in (200, 206):
                    response.read()
                    raise _error(response)
                mode = "ab" if response.status_code == 206 else "wb"
                done = have if response.status_code == 206 else 0
                with part.open(mode) as out:
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(item["name"], done, item["size_bytes"])
        actual = _sha256(part)
        if actual != item["sha256"]:
            part.unlink()
            raise IntegrityError(
                f"{item['name']}: downloaded sha256 {actual[:12]}..., the signed manifest says "
                f"{item['sha256'][:12]}...; discarded (the next try downloads it again)"
            )
        return part

    def _swap(self, folder: Path) -> None:
        """``current`` -> folder, atomically; the old ``current`` becomes ``previous``."""
        current = self.cache_dir / "current"
        old = current.resolve() if current.exists() else None
        _relink(current, folder)
        if old is not None and old != folder:
            _relink(self.cache_dir / "previous", old)

    def _prune(self) -> None:
        """Keep the bundles ``current`` and ``previous`` point at; drop the rest."""
        keep = {p.resolve() for p in (self.cache_dir / "current", self.cache_dir / "previous")
                if p.exists()}  # fmt: skip
        for folder in (self.cache_dir / "bundles").iterdir():
            if folder.resolve() not in keep and not folder.name.startswith("."):
                shutil.rmtree(folder, ignore_errors=True)

    def rollback(self) -> LocalBundle:
        """Swap ``previous`` back into ``current`` (and the other way round)."""
        with self._lock:
            previous = self.cache_dir / "previous"
            if not previous.exists():
                raise DeliveryError(f"{self.cache_dir}: no previous bundle to roll back to")
            back = previous.resolve()
            self._swap(back)
            state = self._state()
            state["etag"] = None  # the server's answer no longer describes `current`
            self._save_state(state)
        bundle = self.current()
        if bundle is None:  # pragma: no cover
            raise DeliveryError(f"{back}: rolled back but not readable")
        return bundle

    def get_model(
        self, mode: DownloadMode = DownloadMode.LATEST_MODEL, progress: Progress | None = None
    ) -> LocalBundle:
        """The bundle to run, fetched as ``mode`` says."""
        current = self.current()
        if current is not None and mode is DownloadMode.LOCAL_MODEL:
            return current
        if current is not None and mode is DownloadMode.LOCAL_MODEL_UPDATE_IN_BACKGROUND:
            self.background = threading.Thread(
                target=self._update_quietly, args=(progress,), daemon=True
            )
            self.background.start()
            return current
        return self.download(progress=progress)

    def _update_quietly(self, progress: Progress | None) -> None:
        try:
            self.download(progress=progress)
        except (DeliveryError, IntegrityError, httpx.HTTPError) as exc:
            log.warning("background update failed (the local bundle stays): %s", exc)

    def report(self, window: Mapping[str, Any]) -> dict[str, Any]:
        """Send one telemetry window (``sdk.telemetry.window`` builds it)."""
        response = self._http.post("/api/v1/telemetry", json=dict(window))
        if response.status_code not in (200, 201):
            raise _error(response)
        result: dict[str, Any] = response.json()
        return result

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.get(path, **kwargs)
        if response.status_code not in (200, 304):
            raise _error(response)
        return response


def _error(response: httpx.Response) -> DeliveryError:
    try:
        reason = response.json().get("reason", response.text)
    except ValueError:
        reason = response.text
    retry = response.headers.get("retry-after")
    suffix = f" (retry after {retry} s)" if retry else ""
    return DeliveryError(
        f"{response.request.method} {response.request.url.path}: {response.status_code} "
        f"{reason}{suffix}",
        status=response.status_code,
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _relink(link: Path, target: Path) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}.{threading.get_ident()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(target, link.parent))  # the cache folder may move
    os.replace(tmp, link)
