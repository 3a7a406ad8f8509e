"""The capture proxy's cost and capacity under gunicorn; print the figures.

    .venv/bin/python benchmarks/capture_proxy.py [--requests 400] [--streams 100,150] [--threads 160]
        [--database postgres://postgres@127.0.0.1:5432/threadsite_bench_capture_PID | --sqlite]

Starts the offline simulator in a child process and gunicorn as the Dockerfile's CMD starts it, with ONE
worker process (GUNICORN_WORKERS=1) of `--threads` threads, never recycled (the capture service's settings
in docker-compose.yml), on a PostgreSQL database of its own, created, migrated and dropped by the run.

1. Added latency: `--requests` requests each way, interleaved, one at a time on kept-alive connections:
   GET /conversations/{id} and POST /conversations (which the proxy records in the registry), straight to
   the simulator (the baseline, same run) and through /proxy/v1/. Prints median and p99 of both and the
   difference (target: under 5 ms added at the median); and the floor any request pays here (the proxy's
   401 to a request with no token, through the same gunicorn).
2. Concurrent streams: for each count in `--streams`, that many POST /responses with stream: true held
   open at once through the proxy (each about 8 s long, paced like a model), while short requests (a proxied
   GET, and the login page) are timed; compared with the same short requests with no stream open. A count
   is "held" if every stream was still open when the timing ended and then ran to the end, and the short
   requests' p99 stayed under twice the baseline's plus 20 ms (target: at least 100).
"""

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from delete_jobs import benchmark_django  # noqa: E402
from hostile_pages import start_gunicorn  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
API_KEY = "sk-sim-capture-bench-0001"
PROJECT = "proj_capture"
FIRST_TOKEN_MS = 300
TOKEN_MS = 400  # 19 words: a stream lasts about 8 s
RAMP = 2.0


def worker_cpu_seconds(master_pid: int) -> float:
    """CPU time (user + system) of gunicorn's worker processes so far: what the proxy costs the web process,
    whatever else runs on the machine (wall-clock figures on a busy machine include others' load)."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    ticks = 0
    for pid in children:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def row(label: str, values: list[float]) -> str:
    return (
        f"  {label:<34} median {statistics.median(values):7.2f} ms   p99 {percentile(values, 0.99):7.2f} ms"
    )


def timed(session: requests.Session, method: str, url: str, *, expect: int = 200, **kwargs) -> float:
    started = time.perf_counter()
    answer = session.request(method, url, timeout=30, **kwargs)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != expect:
        raise RuntimeError(f"{method} {url} answered {answer.status_code}: {answer.text[:200]}")
    return elapsed


def added_latency(sim_base: str, proxy_base: str, secret: str, count: int) -> dict:
    direct = requests.Session()
    direct.headers["Authorization"] = f"Bearer {API_KEY}"
    proxied = requests.Session()
    proxied.headers["Authorization"] = f"Bearer {secret}"
    requests_without_token = requests.Session()
    conversation = direct.post(f"{sim_base}/conversations", json={}, timeout=10).json()["id"]
    keys = ("get direct", "get proxy", "post direct", "post proxy", "floor")
    results: dict[str, list[float]] = {key: [] for key in keys}
    floor = f"{proxy_base}/conversations"  # with no token: refused before any query or forwarding
    for _ in range(20):  # warm-up: connections, the session pool, Django's first requests
        timed(proxied, "GET", f"{proxy_base}/conversations/{conversation}")
        timed(direct, "GET", f"{sim_base}/conversations/{conversation}")
    for _ in range(count):
        results["get direct"].append(timed(direct, "GET", f"{sim_base}/conversations/{conversation}"))
        results["get proxy"].append(timed(proxied, "GET", f"{proxy_base}/conversations/{conversation}"))
        results["post direct"].append(timed(direct, "POST", f"{sim_base}/conversations", json={}))
        results["post proxy"].append(timed(proxied, "POST", f"{proxy_base}/conversations", json={}))
        results["floor"].append(timed(requests_without_token, "GET", floor, expect=401))
    return results


def cpu_per_kind(master_pid: int, sim_base: str, proxy_base: str, secret: str, count: int) -> dict:
    """The worker's CPU milliseconds per request of each kind, `count` requests of one kind at a time."""
    proxied = requests.Session()
    proxied.headers["Authorization"] = f"Bearer {secret}"
    conversation = proxied.post(f"{proxy_base}/conversations", json={}, timeout=10).json()["id"]
    kinds = {
        "floor (401)": ("GET", f"{proxy_base}/conversations", None),
        "proxied GET": ("GET", f"{proxy_base}/conversations/{conversation}", None),
        "proxied POST (recorded)": ("POST", f"{proxy_base}/conversations", {}),
    }
    found = {}
    anonymous = requests.Session()
    for kind, (method, url, body) in kinds.items():
        session, expect = (anonymous, 401) if kind.startswith("floor") else (proxied, 200)
        before = worker_cpu_seconds(master_pid)
        for _ in range(count):
            timed(session, method, url, json=body, expect=expect)
        found[kind] = (worker_cpu_seconds(master_pid) - before) / count * 1000
    return found


class Stream(threading.Thread):
    """One streamed response read on a raw socket: when its first body byte and its end arrived."""

    def __init__(self, proxy_base: str, secret: str, conversation: str, start: threading.Event, delay: float):
        super().__init__(daemon=True)
        self.delay = delay
        self.url = proxy_base
        self.secret = secret
        self.conversation = conversation
        self.start_event = start
        self.first = self.total = None
        self.events = 0
        self.error = ""

    def run(self):
        host, port = self.url.split("//")[1].split("/")[0].split(":")
        body = json.dumps(
            {"model": "gpt-sim", "input": "Hi", "conversation": self.conversation, "stream": True}
        )
        request = (
            f"POST /proxy/v1/responses HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {self.secret}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n{body}"
        ).encode()
        self.start_event.wait()
        time.sleep(self.delay)
        try:
            with socket.create_connection((host, int(port)), timeout=60) as sock:
                started = time.monotonic()
                sock.sendall(request)
                received = b""
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    received += data
                    if self.first is None and b"event: " in received:
                        self.first = time.monotonic() - started
                self.total = time.monotonic() - started
                if not received.startswith(b"HTTP/1.1 200"):
                    self.error = received.split(b"\r\n", 1)[0].decode()
                self.events = received.count(b"event: ")
        except OSError as error:
            self.error = type(error).__name__


def short_requests(proxy_base: str, secret: str, conversation: str, seconds: float) -> dict:
    proxied = requests.Session()
    proxied.headers["Authorization"] = f"Bearer {secret}"
    page = requests.Session()
    found: dict[str, list[float]] = {"proxied GET": [], "login page": []}
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        found["proxied GET"].append(timed(proxied, "GET", f"{proxy_base}/conversations/{conversation}"))
        found["login page"].append(
            timed(page, "GET", proxy_base.removesuffix("/proxy/v1") + "/accounts/login/")
        )
    return found


def streams_run(sim_base: str, proxy_base: str, secret: str, count: int) -> tuple[list[Stream], dict]:
    conversation = requests.post(
        f"{sim_base}/conversations", json={}, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
    ).json()["id"]
    go = threading.Event()
    # Opened over RAMP seconds, as an application's users arrive, not in one burst of connections.
    streams = [Stream(proxy_base, secret, conversation, go, RAMP * n / count) for n in range(count)]
    for stream in streams:
        stream.start()
    go.set()
    time.sleep(RAMP + 0.5)  # every stream open before the others are timed
    during = short_requests(proxy_base, secret, conversation, 4.0)
    still_open = sum(stream.total is None for stream in streams)
    for stream in streams:
        stream.join(60)
    during["still open"] = still_open
    return streams, during


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--streams", default="100,150")
    parser.add_argument("--threads", type=int, default=160, help="GUNICORN_THREADS of the one web process")
    parser.add_argument(
        "--database", default=f"postgres://postgres@127.0.0.1:5432/threadsite_bench_capture_{os.getpid()}"
    )
    parser.add_argument(
        "--sqlite",
        action="store_true",
        help="A SQLite file instead: what the proxy adds when its database answers in microseconds",
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.streams.split(",")]

    from threads_app.simulator import SimulatorConfig, SimulatorProcess

    log_path = Path(tempfile.gettempdir()) / f"capture_proxy_gunicorn_{os.getpid()}.log"
    server = None
    config = SimulatorConfig(seed=11, stream_first_token_ms=FIRST_TOKEN_MS, stream_token_ms=TOKEN_MS)
    with (
        benchmark_django(args.database, sqlite=args.sqlite) as database,
        SimulatorProcess(config) as sim,
        log_path.open("w") as log,
    ):
        sim.call("add_key", API_KEY, PROJECT)
        from threads_app import tokens
        from threads_app.models import Credential

        credential = Credential(name="bench", base_url=sim.base_url, project_id=PROJECT)
        credential.api_key = API_KEY
        credential.save()
        secret = tokens.create(
            "bench", scopes=["register", "read"], credential=credential, requests_per_minute=1_000_000
        ).secret
        try:
            server, base = start_gunicorn(
                os.environ["DATABASE_URL"],
                log,
                "--access-logfile",
                "/dev/null",
                GUNICORN_WORKERS="1",
                GUNICORN_THREADS=str(args.threads),
                GUNICORN_MAX_REQUESTS="0",  # as compose's capture service: never recycled mid-stream
                LOG_LEVEL="WARNING",
            )
            proxy = f"{base}/proxy/v1"
            latency = added_latency(sim.base_url, proxy, secret, args.requests)
            cpu = cpu_per_kind(server.pid, sim.base_url, proxy, secret, args.requests)
            conversation = requests.post(
                f"{sim.base_url}/conversations",
                json={},
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=10,
            ).json()["id"]
            baseline = short_requests(proxy, secret, conversation, 5.0)
            stream_runs = [(count, *streams_run(sim.base_url, proxy, secret, count)) for count in counts]
        finally:
            if server is not None:
                server.terminate()
                server.wait(20)
        from threads_app.models import Thread

        recorded = Thread.objects.filter(source="capture").count()

    print(f"gunicorn (Dockerfile CMD), 1 worker × {args.threads} threads (gthread), {database}")
    print(f"\n1. Added latency, {args.requests} requests each, one at a time (kept-alive connections)")
    for kind in ("get", "post"):
        direct, proxied = latency[f"{kind} direct"], latency[f"{kind} proxy"]
        print(row(f"{kind.upper()} direct to the simulator", direct))
        print(row(f"{kind.upper()} through /proxy/v1/", proxied))
        median = statistics.median(proxied) - statistics.median(direct)
        p99 = percentile(proxied, 0.99) - percentile(direct, 0.99)
        print(f"  {'→ added by the proxy':<34} median {median:7.2f} ms   p99 {p99:7.2f} ms")
    print(row("floor: the proxy's 401, no token", latency["floor"]))
    print("  (gunicorn and Django's middleware, no query, no forwarding: any request's cost on this machine)")
    print("  the web process's CPU time per request, each kind run alone (whatever else loads the machine):")
    print("    " + ", ".join(f"{kind} {ms:.2f} ms" for kind, ms in cpu.items()))
    print(
        f"  conversations recorded in the registry: {recorded} (created through the proxy: "
        f"{2 * args.requests + 1})"
    )

    length = (FIRST_TOKEN_MS + 19 * TOKEN_MS) / 1000
    print(
        f"\n2. Concurrent streams (each ~{length:.0f} s, opened over {RAMP:.0f} s), short requests meanwhile"
    )
    print(row("proxied GET, no stream open", baseline["proxied GET"]))
    print(row("login page, no stream open", baseline["login page"]))
    held = 0
    for count, streams, during in stream_runs:
        ok = [s for s in streams if not s.error and s.first is not None and s.events >= 20]
        firsts = [s.first for s in ok] or [float("nan")]
        refused = [s.error for s in streams if s.error]
        open_while_timed = during.pop("still open")
        limit = {name: 2 * percentile(values, 0.99) + 20 for name, values in baseline.items()}
        undelayed = all(percentile(during[name], 0.99) <= limit[name] for name in limit)
        whole = len(ok) == count and open_while_timed == count
        print(
            f"  {count} streams: {len(ok)} complete, first event median "
            f"{statistics.median(firsts) * 1000:.0f} ms max {max(firsts) * 1000:.0f} ms; "
            f"refused/failed {len(refused)}"
            + (f" ({refused[0]})" if refused else "")
            + f"; open when the timing ended: {open_while_timed}"
        )
        print(row(f"proxied GET with {count} streams", during["proxied GET"]))
        print(row(f"login page with {count} streams", during["login page"]))
        if whole and undelayed:
            held = max(held, count)
    print(f"  → streams one web process held without delaying other requests: {held}")
    print(f"(gunicorn log: {log_path})")


if __name__ == "__main__":
    main()
