"""HTTP API under load: `policyqa serve` on a loopback port, POST /v1/judge with dev-split messages
from concurrent clients, against a serial baseline (one client, one request at a time) measured in
the same run on the same warm server. Ratios are concurrent / serial.

Every request must succeed, and every concurrent ruling must equal the serial ruling of the same text
(the engine is shared between the server's threads; this is where a race would show).

Run: POLICYQA_HOME=... .venv/bin/python benchmarks/bench_api.py [--requests 200] [--clients 8]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
POLICYQA = Path(sys.executable).parent / "policyqa"


def dev_messages() -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "evals/datasets/dev.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return [row["text"] for row in rows if row["kind"] == "message"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return statistics.median(ordered) if q == 0.5 else ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_server(port: int, log) -> subprocess.Popen:
    server = subprocess.Popen([str(POLICYQA), "serve", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 600
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"the server exited with status {server.returncode}; see {log.name}")
            try:
                ready = client.get("/readyz")  # answers once the index has loaded or failed to
                if ready.status_code == 200:
                    return server
                server.terminate()
                raise SystemExit(f"the server is not ready: {ready.json()['error']}")
            except httpx.TransportError:
                pass
            time.sleep(0.3)
    server.terminate()
    raise SystemExit("the server did not become ready within 600 s")


def run(base_url: str, texts: list[str], clients: int) -> tuple[list[float], list[dict | None], int, float]:
    """POST every text to /v1/judge from `clients` threads (one httpx client each).
    Returns latencies (ms), results (None for a failed request), the error count and the wall time."""
    local = threading.local()
    opened: list[httpx.Client] = []

    def one(text: str) -> tuple[float, dict | None]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base_url, timeout=300)
            opened.append(local.client)
        start = time.perf_counter()
        try:
            response = local.client.post("/v1/judge", json={"text": text})
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            body = None
        return (time.perf_counter() - start) * 1000, body["result"] if body else None

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        done = list(pool.map(one, texts))
    wall = time.perf_counter() - started
    for client in opened:
        client.close()
    results = [result for _, result in done]
    return [ms for ms, _ in done], results, sum(r is None for r in results), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per phase (serial, then concurrent)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    args = parser.parse_args()
    messages = dev_messages()
    texts = [messages[n % len(messages)] for n in range(args.requests)]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    home = os.environ.get("POLICYQA_HOME", "(default: ./.policyqa)")
    with tempfile.NamedTemporaryFile("wb", prefix="policyqa-serve-", suffix=".log", delete=False) as log:
        print(f"policyqa serve on {base_url} (POLICYQA_HOME={home})")
        server = start_server(port, log)
        try:
            run(base_url, texts[: args.clients], args.clients)  # warm the connections and the threadpool
            serial = run(base_url, texts, 1)
            concurrent = run(base_url, texts, args.clients)
        finally:
            server.terminate()
            server.wait(timeout=30)

    print(f"\nPOST /v1/judge: {args.requests} dev messages ({len(set(texts))} distinct) per phase; "
          f"{os.cpu_count()} CPU cores; ratio = concurrent / serial\n")
    print(f"{'':<24}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'errors':>8}")
    rows = [("serial (1 client)", serial), (f"concurrent ({args.clients} clients)", concurrent)]
    for label, (latencies, _, errors, wall) in rows:
        print(f"{label:<24}{percentile(latencies, 0.5):>9.1f}{percentile(latencies, 0.99):>9.1f}"
              f"{len(latencies) / wall:>9.2f}{errors:>8}")
    (s_lat, s_res, s_err, s_wall), (c_lat, c_res, c_err, c_wall) = serial, concurrent
    print(f"{'ratio':<24}{percentile(c_lat, 0.5) / percentile(s_lat, 0.5):>9.2f}"
          f"{percentile(c_lat, 0.99) / percentile(s_lat, 0.99):>9.2f}{(len(c_lat) / c_wall) / (len(s_lat) / s_wall):>9.2f}")
    mismatched = sum(a != b for a, b in zip(s_res, c_res) if a is not None and b is not None)
    identical = mismatched == 0 and s_err == 0 and c_err == 0
    print(f"\nerrors: {s_err + c_err}")
    print(f"identical: {'yes' if identical else 'no'} (concurrent rulings equal to the serial ruling of the same text: "
          f"{len(texts) - mismatched - c_err} of {len(texts)})")
    if not identical:
        print(f"server log: {log.name}")
        return 1
    os.unlink(log.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
