"""``modelyard bridge serve``: a receiver for MLflow registry webhooks that runs the bridge as
soon as an alias or a version tag changes.

MLflow's tracking server signs each delivery (``X-MLflow-Signature: v1,<base64>``, an
HMAC-SHA256 with the webhook's secret over ``<delivery id>.<timestamp>.<body>``). A request
whose signature does not match, or whose timestamp is more than ``MAX_AGE_S`` old, is refused
with 401 and nothing runs. A good one is answered 202 at once and the sync of its model runs
on a worker thread, one at a time. Stage transitions send no webhook, so the server also runs
a full sync every ``interval`` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

SIGNATURE = "X-MLflow-Signature"
TIMESTAMP = "X-MLflow-Timestamp"
DELIVERY_ID = "X-MLflow-Delivery-Id"
MAX_AGE_S = 300
MAX_BODY = 1 << 20
EVENTS = (
    "model_version_alias.created",
    "model_version_alias.deleted",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version.created",
)

Sync = Callable[[str | None], object]  # a model name, or None for every model


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    content = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> str | None:
    """None if the delivery is genuine and fresh, else why not."""
    signature, timestamp = headers.get(SIGNATURE), headers.get(TIMESTAMP)
    delivery = headers.get(DELIVERY_ID)
    if not signature or not timestamp or not delivery:
        return f"missing {SIGNATURE}, {TIMESTAMP} or {DELIVERY_ID}"
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        return f"{TIMESTAMP} is not a unix time"
    if abs(age) > MAX_AGE_S:
        return f"timestamp is {age:.0f} s off (more than {MAX_AGE_S} s): a replay?"
    if not hmac.compare_digest(sign(secret, delivery, timestamp, body), signature):
        return "signature does not match (wrong secret, or the body was changed)"
    return None


class Receiver:
    """The HTTP server, its sync worker and its timer."""

    def __init__(self, secret: str, sync: Sync, *, host: str, port: int, interval: float) -> None:
        if not secret:
            raise ValueError("a webhook secret is required")
        self.secret, self.sync, self.interval = secret, sync, interval
        self.jobs: queue.Queue[str | None] = queue.Queue()
        self.done = 0  # syncs finished (GET /healthz), ok or not
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer((host, port), self._handler())

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def serve_forever(self) -> None:
        threading.Thread(target=self._work, name="bridge-sync", daemon=True).start()
        if self.interval > 0:
            threading.Thread(target=self._tick, name="bridge-timer", daemon=True).start()
        self.jobs.put(None)  # converge once at start
        log.info("bridge listening on %s:%s", *self.server.server_address[:2])
        try:
            self.server.serve_forever()
        finally:
            self.stopping.set()
            self.server.server_close()

    def _work(self) -> None:
        while not self.stopping.is_set():
            model = self.jobs.get()
            try:
                self.sync(model)
            except Exception:  # one bad sync must not stop the receiver
                log.exception("bridge sync of %s failed", model or "every model")
            finally:
                self.done += 1

    def _tick(self) -> None:
        while not self.stopping.wait(self.interval):
            self.jobs.put(None)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    state = {"queued": receiver.jobs.qsize(), "syncs_done": receiver.done}
                    self._reply(HTTPStatus.OK, {"status": "ok", **state})
                else:
                    self._reply(HTTPStatus.NOT_FOUND, {"error": "POST /webhook; GET /healthz"})

            def do_POST(self) -> None:
                if self.path != "/webhook":
                    self._reply(HTTPStatus.NOT_FOUND, {"error": "POST /webhook"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
                    return
                body = self.rfile.read(length)
                problem = verify(receiver.secret, dict(self.headers.items()), body)
                if problem:
                    log.warning("webhook refused: %s", problem)
                    self._reply(HTTPStatus.UNAUTHORIZED, {"error": problem})
                    return
                try:
                    payload = json.loads(body)
                    event = f"{payload['entity']}.{payload['action']}"
                    model = str(payload["data"]["name"])
                except (ValueError, KeyError, TypeError):
                    self._reply(HTTPStatus.BAD_REQUEST, {"error": "not an MLflow webhook payload"})
                    return
                if event not in EVENTS:
                    self._reply(HTTPStatus.OK, {"ignored": event})
                    return
                receiver.jobs.put(model)
                self._reply(HTTPStatus.ACCEPTED, {"queued": model, "event": event})

            def _reply(self, status: HTTPStatus, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                log.info("%s %s", self.address_string(), format % args)

        return Handler
