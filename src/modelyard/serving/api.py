"""The device API (FastAPI): the bundle a device should run, its files, and its telemetry.

    GET  /healthz
    GET  /api/v1/models/latest?policy_id=&device_id=&platform=[&os_version=&app_version=
         &customer_id=&formats=&<targeting attribute>=]        models:read
    GET  /api/v1/bundles/{bundle_id}/artifacts/{name}           models:read
    POST /api/v1/telemetry                                      telemetry:write
    GET  /api/v1/bundles/{bundle_id}/drift                      drift:read

Keys come as ``Authorization: Bearer <key>`` (or ``X-API-Key``). Every error is a JSON
object ``{"error", "reason"}`` (``field`` too where one parameter is wrong).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from modelyard.db import api_keys, bundles
from modelyard.db import drift as drift_db
from modelyard.db import telemetry as telemetry_db
from modelyard.db.pool import Pool
from modelyard.errors import IntegrityError, ModelyardError, NotFoundError, TelemetryError
from modelyard.serving import dispatch
from modelyard.serving.auth import Key, Keys, RateLimiter
from modelyard.serving.catalog import FORMATS, Catalog, Served, served
from modelyard.serving.config import ServeParams
from modelyard.serving.telemetry import TelemetryIn, TelemetryOut, to_window
from modelyard.storage import ObjectStore

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
ID = r"^[A-Za-z0-9._:@-]+$"
VERSION = r"^\d{1,9}(\.\d{1,9}){0,3}$"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_KNOWN_QUERY = {"policy_id", "device_id", "platform", "os_version", "app_version",
                "customer_id", "formats"}  # fmt: skip


class Problem(Exception):
    """An HTTP error answered as JSON."""

    def __init__(
        self, status: int, error: str, reason: str, *, field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(reason)
        self.status, self.error, self.reason, self.field = status, error, reason, field
        self.headers = headers or {}

    def response(self) -> Response:
        body: dict[str, Any] = {"error": self.error, "reason": self.reason}
        if self.field:
            body["field"] = self.field
        return Response(
            orjson.dumps(body), self.status, self.headers, media_type="application/json"
        )


class ArtifactOut(BaseModel):
    name: str
    role: str | None
    format: str | None
    precision: str | None
    primary: bool
    verified: bool | None = Field(
        default=None,
        description="a model artifact: its parity was checked in its runtime (false: served "
        "only where serve.allow_unverified names its format)",
    )
    verification: str | None = None
    size_bytes: int
    sha256: str
    url: str


class TelemetrySpec(BaseModel):
    features: dict[str, dict[str, list[float]]]
    per_image: list[str]
    classes: list[str]


class LatestOut(BaseModel):
    policy_id: str
    bundle_id: str
    bundle_version: int
    bundle_tier: str
    bundle_hash: str | None
    ontology_version: str | None
    schema_version: str | None
    policy_ast: dict[str, Any] | None
    artifacts: list[ArtifactOut]
    manifest: str  # the signed JSON text
    signature: str  # base64 ed25519 over manifest's UTF-8 bytes
    key_id: str
    manifest_expires_at: str
    threshold: float | None  # the operating point the promotion reference was measured at
    telemetry: TelemetrySpec


class DriftWindow(BaseModel):
    window_start: str
    window_end: str
    state: str  # ok | warn | alarm | insufficient | no-reference
    drift_score: float | None
    sample_count: int
    features: dict[str, dict[str, Any]]
    class_mix: dict[str, Any] | None
    estimate: dict[str, Any] | None = None  # expected precision/accuracy from calibrated scores


class DriftOut(BaseModel):
    bundle_id: str
    label: str
    state: str  # the latest window's, or no-windows
    windows: list[DriftWindow]


class ErrorOut(BaseModel):
    error: str
    reason: str
    field: str | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut}
    for code in (401, 403, 404, 409, 413, 422, 429)
}  # fmt: skip


@dataclass
class Service:
    """What the handlers share: the database, the store, and the caches in front of them."""

    pool: Pool
    store: ObjectStore
    params: ServeParams
    catalog: Catalog = field(init=False)
    keys: Keys = field(init=False)
    limiter: RateLimiter = field(init=False)
    # storage path -> (size, version) of the stored object whose sha256 was checked
    _checked: dict[str, tuple[int, str]] = field(init=False, default_factory=dict)
    _others: dict[uuid.UUID, tuple[float, Served | None]] = field(  # inactive bundles, by id
        init=False, default_factory=dict
    )
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.catalog = Catalog(self.load_active, self.params.cache_ttl_s)
        self.keys = Keys(self.find_key, self.params.cache_ttl_s)
        self.limiter = RateLimiter(self.params.rate_limit_per_s, self.params.rate_limit_burst)

    def load_active(self) -> list[dict[str, Any]]:
        with self.pool.connection() as conn:
            return bundles.serving(conn)

    def find_key(self, digest: str) -> dict[str, Any] | None:
        with self.pool.connection() as conn:
            return api_keys.by_hash(conn, digest)

    def bundle(self, bundle_id: uuid.UUID) -> Served | None:
        """A bundle by id: active from the catalog, else (once signed) from the database."""
        found = self.catalog.active(bundle_id)
        if found is not None:
            return found
        hit = self._others.get(bundle_id)
        if hit is not None and time.monotonic() - hit[0] < self.params.cache_ttl_s:
            return hit[1]
        with self.pool.connection() as conn:
            row = bundles.serving_one(conn, bundle_id)
        item = served(row) if row is not None and row["manifest"] is not None else None
        self._others[bundle_id] = (time.monotonic(), item)
        return item

    def checked_size(self, artifact: dict[str, Any]) -> int:
        """The stored artifact's size, after its sha256 was checked (once per version of
        the stored object: a rewritten object is checked again)."""
        key = artifact["storage_path"]
        stat = self.store.stat_object(key)
        if self._checked.get(key) != stat:
            self.store.check_object(key, artifact["sha256"])
            with self._lock:
                self._checked[key] = stat
        return stat[0]


def create_app(database_url: str, store: ObjectStore, params: ServeParams) -> FastAPI:
    pool = Pool(database_url)
    service = Service(pool=pool, store=store, params=params)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(service.catalog.reload)
        task = asyncio.create_task(_refresh(service)) if params.cache_ttl_s > 0 else None
        yield
        if task is not None:
            task.cancel()
        pool.close()

    app = FastAPI(
        title="modelyard device API",
        version="1",
        summary="The bundle a device should run, its files, and its telemetry.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(DeclaredBodyLimit, limit=params.telemetry_max_bytes)
    _handlers(app, params.telemetry_max_bytes)
    _routes(app, service)
    return app


async def _refresh(service: Service) -> None:
    while True:
        await asyncio.sleep(service.params.cache_ttl_s)
        try:
            await asyncio.to_thread(service.catalog.reload)
        except ModelyardError as exc:  # keep serving the last table; say so
            log.error("active bundles not reloaded: %s", exc)


def _handlers(app: FastAPI, max_bytes: int) -> None:
    @app.exception_handler(Problem)
    async def problem(_: Request, exc: Problem) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        reason = f"{where}: {first['msg']}" if where else str(first["msg"])
        return Problem(422, "invalid_request", reason, field=where).response()

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        if exc.status_code == 413:
            return too_large(max_bytes).response()
        if exc.status_code == 400:  # a body that is not UTF-8 JSON at all
            reason = f"body: {exc.detail}; send a UTF-8 JSON object"
            return Problem(422, "invalid_request", reason, field="body").response()
        headers = dict(exc.headers or {})
        return Problem(exc.status_code, "http_error", str(exc.detail), headers=headers).response()

    @app.exception_handler(IntegrityError)
    async def corrupt(_: Request, exc: IntegrityError) -> Response:
        log.error("refused to serve a stored artifact: %s", exc)
        return Problem(500, "corrupt_artifact", str(exc)).response()

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError) -> Response:
        return Problem(404, "not_found", str(exc)).response()


async def _authorize(request: Request, service: Service, scope: str) -> Key:
    header = request.headers.get("authorization", "")
    secret = header[7:].strip() if header[:7].lower() == "bearer " else ""
    secret = secret or request.headers.get("x-api-key", "")
    if not secret:
        raise Problem(
            401, "unauthorized", "no API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )  # fmt: skip
    fresh, key = service.keys.cached(secret)
    if not fresh:
        key = await asyncio.to_thread(service.keys.find, secret)
    if key is None or key.revoked:
        why = "this API key is revoked" if key else "this API key is not known"
        raise Problem(401, "unauthorized", why, headers={"WWW-Authenticate": "Bearer"})
    if scope not in key.scopes:
        raise Problem(
            403, "forbidden",
            f"this key's scopes are {', '.join(sorted(key.scopes))}; {scope} is needed",
        )  # fmt: skip
    wait = service.limiter.take(key.id)
    if wait:
        retry = "3600" if math.isinf(wait) else str(max(1, math.ceil(wait)))
        raise Problem(
            429, "rate_limited",
            f"more than {service.params.rate_limit_per_s:g} requests/s for this key",
            headers={"Retry-After": retry},
        )  # fmt: skip
    return key


def _routes(app: FastAPI, service: Service) -> None:
    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """The server is up; how many policies it serves from its table of active bundles."""
        return {"status": "ok", "policies": len(service.catalog.policies())}

    @app.get(
        "/api/v1/models/latest",
        tags=["devices"],
        response_model=LatestOut,
        responses={304: {"description": "Not modified (If-None-Match)"}, **ERRORS},
    )
    async def latest(
        request: Request,
        policy_id: Annotated[str, Query(min_length=1, max_length=200, pattern=ID)],
        device_id: Annotated[str, Query(min_length=1, max_length=200, pattern=ID)],
        platform: Annotated[Literal["android", "ios", "linux", "macos", "windows", "web"], Query()],
        os_version: Annotated[str | None, Query(max_length=40, pattern=VERSION)] = None,
        app_version: Annotated[str | None, Query(max_length=40, pattern=VERSION)] = None,
        customer_id: Annotated[str | None, Query(max_length=200, pattern=ID)] = None,
        formats: Annotated[
            str | None, Query(max_length=100, description="comma-separated: onnx,tflite,coreml")
        ] = None,
    ) -> Response:
        """The bundle this device should run: its tier's choice by targeting and bucket, with
        the artifacts of the device's format (ios: coreml, android: tflite, others: onnx)."""
        key = await _authorize(request, service, "models:read")
        if customer_id is not None and customer_id != key.customer_id:
            raise Problem(
                403, "forbidden", f"this key is customer {key.customer_id}'s, not {customer_id}'s",
                field="customer_id",
            )  # fmt: skip
        wanted = dispatch.formats_for(platform, formats)
        bad = [f for f in wanted if f not in FORMATS]
        if bad or not wanted:
            raise Problem(
                422, "invalid_request",
                f"formats: '{bad[0] if bad else formats}' is not a format; valid: "
                f"{', '.join(FORMATS)}", field="formats",
            )  # fmt: skip
        if service.params.cache_ttl_s == 0:
            await asyncio.to_thread(service.catalog.reload)
        attributes = {k: v for k, v in request.query_params.items() if k not in _KNOWN_QUERY}
        device = dispatch.Device(
            policy_id=policy_id, device_id=device_id, platform=platform,
            customer_id=key.customer_id, os_version=os_version, app_version=app_version,
            attributes=attributes,
        )  # fmt: skip
        tiers = service.catalog.tiers(policy_id)
        choice = dispatch.choose(tiers.get("canary"), tiers.get("production"), device)
        bundle: Served | None = choice.bundle
        if bundle is None:
            reason = (
                "; ".join(choice.reasons) if tiers else f"policy {policy_id} has no active bundle"
            )
            raise Problem(404, "no_bundle", f"no bundle for device {device_id}: {reason}")
        if bundle.unservable:
            raise Problem(404, "no_bundle", bundle.unservable)
        missing = [f for f in wanted if f not in bundle.formats]
        if missing:
            raise Problem(
                404, "no_artifact",
                f"{bundle.label} has no {missing[0]} artifact; it has "
                f"{', '.join(bundle.formats)} (ask with formats=)",
            )  # fmt: skip
        withheld = _withheld(bundle, wanted, service.params.allow_unverified)
        served = tuple(sorted(f for f in wanted if f not in withheld))
        if not served:
            fmt, why = next(iter(withheld.items()))
            others = ", ".join(f for f in bundle.formats if f not in withheld) or "none"
            raise Problem(
                404, "unverified_artifact",
                f"{bundle.label}'s {fmt} artifact is not verified ({why}), and unverified "
                f"{fmt} is not served. Ask with formats= one of: {others}; or verify it "
                f"(`modelyard export verify --format {fmt}` where its runtime runs) and register "
                f"again; or the operator allows it with serve.allow_unverified: [{fmt}]",
            )  # fmt: skip
        body, etag = bundle.body(served)
        headers = {
            "ETag": etag,
            "Cache-Control": f"private, max-age={service.params.cache_max_age_s}",
            "Vary": "Authorization",
            "X-Modelyard-Tier": str(choice.tier),
            "X-Modelyard-Bucket": str(choice.bucket),
            **({"X-Modelyard-Withheld": ",".join(sorted(withheld))} if withheld else {}),
        }
        if etag in _etags(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        return Response(body, headers=headers, media_type="application/json")

    @app.get(
        "/api/v1/bundles/{bundle_id}/artifacts/{name:path}",
        tags=["devices"],
        responses={
            200: {"content": {"application/octet-stream": {}}, "description": "The file"},
            206: {"description": "Partial content (Range)"},
            304: {"description": "Not modified"},
            416: {"description": "Range not satisfiable"},
            **ERRORS,
        },
    )
    async def artifact(request: Request, bundle_id: uuid.UUID, name: str) -> Response:
        """One file of a bundle, streamed; ETag is its sha256; Range/If-Range resume."""
        key = await _authorize(request, service, "models:read")
        bundle = await asyncio.to_thread(service.bundle, bundle_id)
        if bundle is None or not dispatch.customer_visible(bundle.targeting, key.customer_id):
            raise Problem(404, "not_found", f"no bundle {bundle_id} for this key")
        item = bundle.artifact(name)
        if item is None:
            names = ", ".join(a["path"] for a in bundle.row["artifacts"])
            raise Problem(404, "not_found", f"{bundle.label} has no artifact '{name}': {names}")
        size = await asyncio.to_thread(service.checked_size, item)
        return _file_response(request, service.store, item, size)

    @app.get(
        "/api/v1/bundles/{bundle_id}/drift",
        tags=["operators"],
        response_model=DriftOut,
        responses=ERRORS,
    )
    async def bundle_drift(
        request: Request, bundle_id: uuid.UUID,
        last: Annotated[int, Query(ge=1, le=720)] = 24,
    ) -> DriftOut:  # fmt: skip
        """The drift state the monitor computed for a bundle: its latest windows, newest
        first, each with its state, drift score and every feature's PSI and bound."""
        key = await _authorize(request, service, "drift:read")
        bundle = await asyncio.to_thread(service.bundle, bundle_id)
        if bundle is None or not dispatch.customer_visible(bundle.targeting, key.customer_id):
            raise Problem(404, "not_found", f"no bundle {bundle_id} for this key")

        def rows() -> list[dict[str, Any]]:
            with service.pool.connection() as conn:
                return drift_db.live_rows(conn, bundle_id, last)

        windows = [
            DriftWindow(
                window_start=r["window_start"].isoformat(), window_end=r["window_end"].isoformat(),
                state=r["stats"].get("state", "unknown"), drift_score=r["drift_score"],
                sample_count=r["sample_count"], features=r["stats"].get("features", {}),
                class_mix=r["stats"].get("class_mix"), estimate=r["stats"].get("estimate"),
            )
            for r in await asyncio.to_thread(rows)
        ]  # fmt: skip
        state = windows[0].state if windows else "no-windows"
        return DriftOut(bundle_id=str(bundle_id), label=bundle.label, state=state, windows=windows)

    @app.post(
        "/api/v1/telemetry",
        tags=["devices"],
        status_code=201,
        max_body_size=service.params.telemetry_max_bytes,
        response_model=TelemetryOut,
        responses={200: {"model": TelemetryOut, "description": "Already stored"}, **ERRORS},
    )
    async def telemetry(request: Request, payload: TelemetryIn) -> Response:
        """One window of binned statistics from a device, on its bundle's reference edges
        (``telemetry`` in /latest). Sending a window again changes nothing."""
        key = await _authorize(request, service, "telemetry:write")
        bundle = await asyncio.to_thread(service.bundle, payload.bundle_id)
        if bundle is None or not dispatch.customer_visible(bundle.targeting, key.customer_id):
            raise Problem(
                404, "not_found", f"no bundle {payload.bundle_id} for this key", field="bundle_id"
            )
        try:
            window = to_window(payload, bundle, key, service.params, datetime.now(UTC))
        except TelemetryError as exc:
            where = str(exc).split(":", 1)[0].split(" ", 1)[0]
            raise Problem(422, "invalid_telemetry", str(exc), field=where) from exc

        def store() -> tuple[str, int]:
            with service.pool.connection() as conn:
                return telemetry_db.store(conn, window)

        outcome, window_id = await asyncio.to_thread(store)
        if outcome == "conflict":
            raise Problem(
                409, "conflict",
                f"device {payload.device_id} already sent window {payload.window_start} - "
                f"{payload.window_end} of bundle {payload.bundle_id} with other content",
            )  # fmt: skip
        out = TelemetryOut(
            status=outcome, window_id=window_id, bundle_id=str(payload.bundle_id),
            sample_count=payload.sample_count,
        )  # fmt: skip
        return Response(
            out.model_dump_json(), 201 if outcome == "created" else 200,
            media_type="application/json",
        )  # fmt: skip


def _withheld(bundle: Served, wanted: tuple[str, ...], allowed: tuple[str, ...]) -> dict[str, str]:
    """The wanted formats not served because their artifacts are unverified, and why."""
    found = {f: bundle.unverified(f) for f in wanted if f not in allowed}
    return {f: why for f, why in found.items() if why is not None}


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {t.strip().removeprefix("W/") for t in header.split(",")}


def _file_response(
    request: Request, store: ObjectStore, item: dict[str, Any], size: int
) -> Response:
    etag = f'"{item["sha256"]}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=31536000, immutable",
        "Content-Disposition": f'attachment; filename="{item["path"].rsplit("/", 1)[-1]}"',
    }
    if etag in _etags(request.headers.get("if-none-match")):
        return Response(status_code=304, headers=headers)
    start, end, status = 0, size - 1, 200
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted and (if_range is None or if_range.strip() == etag):
        match = _RANGE.match(wanted.strip())
        if match and (match[1] or match[2]):
            if match[1]:
                start = int(match[1])
                end = min(int(match[2]), size - 1) if match[2] else size - 1
            else:
                start, end = max(0, size - int(match[2])), size - 1
            if start >= size or start > end:
                headers["Content-Range"] = f"bytes */{size}"
                return Response(status_code=416, headers=headers)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(
        _chunks(store, item["storage_path"], start, end - start + 1),
        status_code=status, headers=headers, media_type="application/octet-stream",
    )  # fmt: skip


def _chunks(store: ObjectStore, key: str, offset: int, length: int) -> Iterator[bytes]:
    with store.open_object(key, offset) as handle:
        while length > 0:
            chunk = handle.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def too_large(limit: int) -> Problem:
    return Problem(
        413, "too_large", f"the body is over {limit} bytes; send smaller telemetry windows"
    )


class DeclaredBodyLimit:
    """413 (as JSON) for a body whose Content-Length is over ``limit``, before it is read; a
    chunked body that runs past it is stopped by the route's ``max_body_size``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.limit:
                await too_large(self.limit).response()(scope, receive, send)
                return
        await self.app(scope, receive, send)
