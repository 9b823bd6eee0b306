"""Device delivery commands: ``modelyard serve``, ``keys create|list|revoke``,
``keys signing init|show`` and ``device simulate``. FastAPI and uvicorn are imported only
when the server starts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

from modelyard.config import Settings
from modelyard.db import api_keys, migrate
from modelyard.errors import ConfigError

if TYPE_CHECKING:
    from modelyard.sdk.simulate import DeviceResult

keys_app = typer.Typer(
    help="API keys for devices, and the bundle signing key.", no_args_is_help=True
)
signing_app = typer.Typer(help="The ed25519 key the bridge signs bundle manifests with.",
                          no_args_is_help=True)  # fmt: skip
device_app = typer.Typer(help="Simulated devices against a running server.", no_args_is_help=True)
keys_app.add_typer(signing_app, name="signing")

PARAMS = Path("params.yaml")
PARAMS_ENV = "MODELYARD_SERVE_PARAMS"


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
    params: Annotated[Path, typer.Option(help="params.yaml with a `serve` section.")] = PARAMS,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "warning",
) -> None:
    """Serve the device API (OpenAPI at /docs and /openapi.json; GET /healthz)."""
    import uvicorn

    from modelyard.serving.config import load

    load(params)  # a bad section fails here, before any worker starts
    os.environ[PARAMS_ENV] = str(params.absolute())
    _console().print(f"device API on http://{host}:{port} (docs: /docs), {workers} worker(s)")
    config = uvicorn.Config(
        "modelyard.cli_serving:app_from_env", factory=True, host=host, port=port,
        workers=workers, log_level=log_level, access_log=False,
    )  # fmt: skip
    if workers == 1:
        uvicorn.Server(config).run()
        return
    from uvicorn.supervisors import Multiprocess

    Multiprocess(config, sockets=[_tcp_socket(host, port)]).run()


def _tcp_socket(host: str, port: int) -> socket.socket:
    """The listening socket the worker processes share. Made with proto IPPROTO_TCP, as
    asyncio makes its own: asyncio sets TCP_NODELAY only on sockets that say so, and
    uvicorn's own shared socket (proto 0) left every response of a multi-worker server
    waiting ~40 ms on Nagle's algorithm (183 req/s against 5,195 with one worker)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def app_from_env() -> object:
    """The ASGI app of one worker, from the environment (uvicorn's factory)."""
    from modelyard.db import connection
    from modelyard.serving import config
    from modelyard.serving.api import create_app
    from modelyard.storage import ObjectStore

    settings = Settings.from_env()
    url = connection.database_url(settings)
    with connection.session(url) as conn:
        migrate.require_current(conn, migrate.discover(migrate.default_migrations_dir()))
    params = config.load(Path(os.environ.get(PARAMS_ENV) or PARAMS))
    return create_app(url, ObjectStore(settings.storage_url), params)


@keys_app.command("create")
def keys_create(
    customer: Annotated[str, typer.Option(help="The customer whose devices use the key.")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated: models:read, telemetry:write, drift:read.")
    ] = "models:read,telemetry:write",
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    save: Annotated[
        Path | None, typer.Option(help="Also write the key to this file (mode 0600).")
    ] = None,
    exist_ok: Annotated[
        bool, typer.Option(help="Keep the key in --save if it is live for this customer.")
    ] = False,
) -> None:
    """Create an API key. It is shown once; only its sha256 is stored."""
    from modelyard.serving import auth

    secret = auth.new_secret()
    with migrate.current_session(Settings.from_env()) as conn:
        if exist_ok and save is not None and save.is_file():
            kept = api_keys.by_hash(conn, auth.key_hash(save.read_text(encoding="utf-8").strip()))
            if kept and kept["customer_id"] == customer and kept["revoked_at"] is None:
                _console().print(f"API key {kept['key_prefix']}... for {customer} kept: {save}")
                return
        row = api_keys.insert(
            conn, customer_id=customer, key_hash=auth.key_hash(secret),
            key_prefix=auth.shown_prefix(secret), scopes=[s.strip() for s in scopes.split(",")],
            name=name,
        )  # fmt: skip
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(save, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")
    console = _console()
    console.print(
        f"API key {row['key_prefix']}... for {customer}, scopes {', '.join(row['scopes'])}"
    )
    console.print(f"id {row['id']}; the key (shown once, store it now):")
    print(secret)  # noqa: T201 - the one time it is shown


@keys_app.command("list")
def keys_list(
    customer: Annotated[str | None, typer.Option(help="Only this customer's keys.")] = None,
) -> None:
    """Every API key: prefix, customer, scopes, created, revoked."""
    with migrate.current_session(Settings.from_env()) as conn:
        rows = api_keys.list_all(conn, customer)
    table = Table(title=f"{len(rows)} API keys")
    for column in ("id", "prefix", "customer", "name", "scopes", "created", "revoked"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["id"]), r["key_prefix"] or "", r["customer_id"], r["name"] or "",
            ", ".join(r["scopes"]), f"{r['created_at']:%Y-%m-%d %H:%M}",
            f"{r['revoked_at']:%Y-%m-%d %H:%M}" if r["revoked_at"] else "",
        )  # fmt: skip
    _console().print(table)


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="The key's id or shown prefix.")]) -> None:
    """Revoke an API key (servers refuse it within serve.cache_ttl_s seconds)."""
    with migrate.current_session(Settings.from_env()) as conn:
        row = api_keys.revoke(conn, key)
    _console().print(
        f"revoked {row['key_prefix']}... ({row['customer_id']}) at {row['revoked_at']}"
    )


@signing_app.command("init")
def signing_init(
    force: Annotated[bool, typer.Option(help="Replace an existing key.")] = False,
    exist_ok: Annotated[bool, typer.Option(help="Keep an existing key, without error.")] = False,
) -> None:
    """Create the bundle signing key (MODELYARD_SIGNING_KEY, or under MODELYARD_HOME/keys)."""
    from modelyard import signing

    path = Settings.from_env().signing_key
    if path.exists() and exist_ok and not force:
        key = signing.load_private(path)
        _console().print(f"signing key {key.key_id} kept: {path}")
        return
    key = signing.generate(path, overwrite=force)
    console = _console()
    console.print(f"signing key {key.key_id} written to {path} (mode 0600; keep it out of git)")
    console.print(f"public key for devices: {signing.public_path(path)}")
    console.print(
        "bundles activated from now on are signed; `modelyard bridge sync` signs the rest"
    )


@signing_app.command("show")
def signing_show() -> None:
    """The signing key's id and the public key (PEM) to build into device apps."""
    from modelyard import signing

    path = Settings.from_env().signing_key
    key = signing.load_private(path)
    _console().print(f"key id {key.key_id} ({path})")
    print(signing.public_pem(key.public).decode("ascii"), end="")  # noqa: T201


@device_app.command("simulate")
def device_simulate(
    policy: Annotated[str, typer.Option(help="Policy id.")],
    api_key: Annotated[
        list[str],
        typer.Option(help="CUSTOMER=KEY or CUSTOMER=@FILE; repeat for several customers."),
    ],
    devices: Annotated[int, typer.Option(help="How many devices.")] = 6,
    base_url: Annotated[str, typer.Option(help="The device API.")] = "http://127.0.0.1:8000",
    public_key: Annotated[
        Path | None, typer.Option(help="The signing public key (default: beside the key).")
    ] = None,
    cache: Annotated[Path, typer.Option(help="Folder of the devices' caches.")] = Path(
        ".modelyard/devices"
    ),
    shift: Annotated[
        list[str] | None,
        typer.Option(help="FEATURE=K: move that feature K bins (brightness=-3: darker)."),
    ] = None,
    hours_ago: Annotated[
        int, typer.Option(help="Report the whole hour that ended this many hours ago.")
    ] = 0,
    start_server: Annotated[
        bool, typer.Option(help="Start `modelyard serve` on --base-url's port, stop it after.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Results as JSON.")] = False,
    summary: Annotated[bool, typer.Option(help="Print the counts line only.")] = False,
    by_outcome: Annotated[
        bool, typer.Option(help="One row per distinct outcome, with its device count.")
    ] = False,
) -> None:
    """Run simulated devices: fetch their bundle, verify it, send a telemetry window."""
    from modelyard import signing
    from modelyard.sdk import simulate

    keys = dict(_customer_key(item) for item in api_key)
    with _server(base_url) if start_server else contextlib.nullcontext(base_url) as url:
        fleet = simulate.Fleet(
            base_url=url, api_keys=keys, policy_id=policy, cache_root=cache,
            shifts=dict(_shift(item) for item in shift or []),
            public_key=public_key or signing.public_path(Settings.from_env().signing_key),
        )  # fmt: skip
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        results = simulate.run(fleet, devices, hour - timedelta(hours=hours_ago))
    if as_json:
        print(json.dumps([r.__dict__ for r in results], indent=2))  # noqa: T201
    else:
        _print_fleet(results, table=not summary, by_outcome=by_outcome)
    if all(r.error for r in results):
        raise typer.Exit(1)


@contextlib.contextmanager
def _server(base_url: str) -> Iterator[str]:
    """`modelyard serve` in a process group of its own for the length of the block, on
    --base-url's host and port (port 0: a free one); yields its URL."""
    import httpx

    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    if not port:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
    base_url = f"http://{host}:{port}"
    command = [sys.executable, "-m", "modelyard", "serve", "--host", host, "--port", str(port)]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL)  # noqa: S603
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base_url}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise ConfigError(f"`modelyard serve` did not come up at {base_url}") from None
                time.sleep(0.2)
        _console().print(f"server up at {base_url} (pid {proc.pid})")
        yield base_url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        _console().print("server stopped")


def _short(error: str | None, device_id: str) -> str:
    """An SDK error as a table cell: without the request line and the device's own id."""
    if error is None:
        return ""
    return error.split(": ", 1)[-1].replace(f"no bundle for device {device_id}: ", "")


def _shift(item: str) -> tuple[str, int]:
    name, _, bins = item.partition("=")
    try:
        return name, int(bins)
    except ValueError:
        raise ConfigError(f"--shift {item!r}: expected FEATURE=BINS, e.g. brightness=-3") from None


def _customer_key(item: str) -> tuple[str, str]:
    customer, sep, key = item.partition("=")
    if not sep or not customer or not key:
        raise ConfigError(f"--api-key {item!r}: expected CUSTOMER=KEY or CUSTOMER=@FILE")
    if key.startswith("@"):
        key = Path(key[1:]).read_text(encoding="utf-8").strip()
    return customer, key


def _print_fleet(results: list[DeviceResult], table: bool = True, by_outcome: bool = False) -> None:
    from modelyard.sdk.simulate import Outcome, outcomes

    rows = (
        outcomes(results)
        if by_outcome
        else [Outcome(example=r, devices=1, platforms=(r.platform,)) for r in results]
    )
    grid = Table(title=f"{len(results)} simulated devices"
                 + (f", {len(rows)} outcomes" if by_outcome else ""))  # fmt: skip
    columns = ("device", "customer", "platform", "tier", "bundle", "files verified", "MB",
               "telemetry", "error")  # fmt: skip
    for column in ("devices", "e.g. device", *columns[1:]) if by_outcome else columns:
        grid.add_column(column)
    for row in rows:
        r = row.example
        grid.add_row(
            *((str(row.devices),) if by_outcome else ()), r.device_id, r.customer_id,
            ", ".join(row.platforms), r.tier or "-",
            f"v{r.bundle_version}" if r.bundle_version else "-", str(r.files_verified),
            f"{r.bytes / 1e6:.1f}", r.telemetry, _short(r.error, r.device_id),
        )  # fmt: skip
    console = _console()
    if table:
        console.print(grid)
    held: dict[str, int] = {}
    for r in results:
        label = f"{r.tier} v{r.bundle_version}" if r.tier else "no bundle"
        held[label] = held.get(label, 0) + 1
    sent: dict[str, int] = {}
    for r in results:
        if r.tier:
            sent[r.telemetry] = sent.get(r.telemetry, 0) + 1
    windows = ", ".join(f"{n} {status}" for status, n in sorted(sent.items())) or "none"
    devices = ", ".join(f"{n} {label}" for label, n in sorted(held.items()))
    console.print(f"devices: {devices}; telemetry windows: {windows}")
