"""Device API throughput: a computed ``GET /api/v1/models/latest`` (key check, rate limit,
targeting, bucketing of a different device on every request, the rendered body and its ETag)
under keep-alive load from wrk on loopback, beside nginx serving the same JSON as a static
file to the same load, in one run.

    python bench/serve.py [--seconds 10] [--connections 32] [--workers 1 2]

The server is `modelyard serve` in its own process over an embedded PostgreSQL of its own,
with one published policy (production for every device, a canary at weight 10 for one
customer); wrk and nginx are installed with apt-get when missing (root only). Goal on 2
cores: >= 2,000 req/s and p99 <= 10 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.serving import fleet  # noqa: E402

from modelyard import signing  # noqa: E402
from modelyard.db import connection, migrate  # noqa: E402
from modelyard.storage import ObjectStore  # noqa: E402

LUA = """
counter = 0
request = function()
  counter = counter + 1
  local path = "/api/v1/models/latest?policy_id=fleet-policy&platform=android&device_id=dev-"
    .. counter .. "-" .. math.random(1, 1000000)
  return wrk.format("GET", path, {["Authorization"] = "Bearer %s"})
end
"""
NGINX = """
worker_processes {workers};
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {work}/nginx-tmp;
  proxy_temp_path {work}/nginx-tmp;
  fastcgi_temp_path {work}/nginx-tmp;
  uwsgi_temp_path {work}/nginx-tmp;
  scgi_temp_path {work}/nginx-tmp;
  server {{
    listen 127.0.0.1:{port};
    location / {{ root {work}/static; default_type application/json;
                 try_files /latest.json =404; }}
  }}
}}
"""


def ensure_tools() -> None:
    missing = [
        p
        for p in ("wrk", "nginx")
        if shutil.which(p) is None and not Path(f"/usr/sbin/{p}").exists()
    ]
    if missing and os.geteuid() == 0:
        print(f"installing {', '.join(missing)} with apt-get (for this benchmark only)")
        apt = ["apt-get", "install", "-y", "-qq", *missing]
        subprocess.run(apt, check=False, stdout=subprocess.DEVNULL)  # noqa: S603
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(
                f"{tool} is not installed and cannot be installed here; the benchmark needs it"
            )


def wrk(url: str, script: Path | None, seconds: int, connections: int) -> dict[str, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout  # noqa: S603
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", out)[1]),  # type: ignore[index]
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", out)[1]),  # type: ignore[index]
        "non_2xx": float(errors[1]) if errors else 0.0,
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wait_for(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{proc.args} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer within 60 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="bench-serve-", dir=ROOT / ".modelyard"))
    work.chmod(0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

        server = get_server(work / "pg", cleanup_mode="stop")
    try:
        run(args, work, str(server.get_uri()))
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, admin: str) -> None:
    connection.ensure_database(admin, "bench")
    url = connection.with_database(admin, "bench")
    key = signing.generate(work / "keys" / signing.PRIVATE_NAME)
    store = ObjectStore(str(work / "store"))
    with connection.connect(url) as conn:
        migrate.migrate(conn, migrate.discover(migrate.default_migrations_dir()))
        fleet.publish(conn, store, key)
        secret, _ = fleet.api_key(conn, "cus_acme", ["models:read"])
    script = work / "latest.lua"
    script.write_text(LUA % secret)
    params = work / "params.yaml"
    params.write_text(
        "serve:\n  cache_ttl_s: 2\n  rate_limit_per_s: 1000000\n  rate_limit_burst: 1000000\n"
    )
    env = fleet.server_env() | {
        "DATABASE_URL": url,
        "MODELYARD_STORAGE_URL": store.url,
        "MODELYARD_HOME": str(work / "home"),
    }
    rows = []
    body = b""
    for workers in args.workers:
        port = fleet.free_port()
        proc = subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "modelyard",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--params",
                str(params),
            ],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/healthz", proc)
        check = httpx.get(
            f"{base}/api/v1/models/latest",
            params={"policy_id": "fleet-policy", "device_id": "bench", "platform": "android"},
            headers={"Authorization": f"Bearer {secret}"},
        )
        check.raise_for_status()
        body = check.content
        wrk(f"{base}/healthz", None, 2, 8)  # warm-up
        health = wrk(f"{base}/healthz", None, args.seconds, args.connections)
        rows.append((f"modelyard /healthz, {workers} worker(s)", health))
        rows.append(
            (
                f"modelyard serve, {workers} worker(s)",
                wrk(base, script, args.seconds, args.connections),
            )
        )
        stop(proc)
    (work / "static").mkdir()
    (work / "static" / "latest.json").write_bytes(body)
    (work / "nginx-tmp").mkdir()
    for workers in sorted({1, max(args.workers)}):
        port = fleet.free_port()
        conf = work / "nginx.conf"
        conf.write_text(NGINX.format(workers=workers, work=work, port=port))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        proc = subprocess.Popen([nginx, "-c", str(conf)], start_new_session=True)  # noqa: S603
        wait_for(f"http://127.0.0.1:{port}/", proc)
        static = wrk(f"http://127.0.0.1:{port}/", script, args.seconds, args.connections)
        rows.append((f"nginx static file, {workers} worker(s)", static))
        stop(proc)
    report(rows, len(body), args)


def report(rows: list[tuple[str, dict[str, float]]], size: int, args: argparse.Namespace) -> None:
    best_nginx = max(r["rps"] for name, r in rows if name.startswith("nginx"))
    print(
        f"\nGET /api/v1/models/latest ({size} B body), wrk 2 threads, {args.connections} "
        f"keep-alive connections, {args.seconds} s each, {os.cpu_count()} cores"
    )
    print(f"{'server':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'vs nginx':>9}")
    for name, r in rows:
        print(
            f"{name:<34} {r['rps']:>9.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} "
            f"{r['non_2xx']:>8.0f} {r['rps'] / best_nginx:>8.2f}x"
        )
    ours = [r for name, r in rows if name.startswith("modelyard serve")]
    best = max(ours, key=lambda r: r["rps"])
    met = best["rps"] >= 2000 and best["p99"] <= 10
    verdict = "met" if met else "NOT met"
    print(
        "goal (>= 2,000 req/s and p99 <= 10 ms for the computed /latest): "
        f"{verdict} ({best['rps']:.0f} req/s, p99 {best['p99']:.2f} ms)"
    )


if __name__ == "__main__":
    main()
