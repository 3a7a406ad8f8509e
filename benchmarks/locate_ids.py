"""Importing IDs spread over three projects without saying which credential owns each (`--credential
auto`); print the figures.

    .venv/bin/python benchmarks/locate_ids.py [--ids 1000]
        [--database postgres://postgres@127.0.0.1:5432/threadsite_bench_locate | --sqlite]

The simulator (a child process, 50 ms latency, 100 requests/s per project) holds `--ids` threads, a third
in each of three projects, and a fourth project's key that holds nothing. The four credentials are
registered, each limited to 100 requests/s; `importing.import_threads(…, credential=None)` asks them in
turn and files each ID under the one that finds it. Printed: the time, the retrieves it needed (per ID),
and the time the rate limits allow for them: the busiest project's retrieves / 100 per s, since the
projects' limits run side by side (target: within 1.2×).
"""

import argparse
import sys
import time
from collections import Counter

from delete_jobs import LATENCY_MS, LIMIT_PER_MINUTE, benchmark_django

from threads_app.simulator import SimulatorConfig, SimulatorProcess

DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/threadsite_bench_locate"
PROJECTS = ["proj_a", "proj_b", "proj_c"]


def run(count: int) -> list[str]:
    from threads_app import importing, locating
    from threads_app.models import Credential, Thread

    # Keep the searches the import makes, to count each credential's retrieves from what each was asked.
    searches, locate = [], locating.locate
    locating.locate = lambda batch: searches.extend(batch) or locate(batch)

    config = SimulatorConfig(latency_ms=LATENCY_MS, rate_limit_per_minute=LIMIT_PER_MINUTE, seed=31)
    problems = []
    with SimulatorProcess(config) as sim:
        owner_of, keys = {}, {}
        for n, project in enumerate([*PROJECTS, "proj_empty"]):
            keys[project] = f"sk-sim-locate-{n:04d}-0000000"
            sim.call("add_key", keys[project], project)
            credential = Credential(
                name=project, base_url=sim.base_url, project_id=project, requests_per_minute=LIMIT_PER_MINUTE
            )
            credential.api_key = keys[project]
            credential.save()
        for n, project in enumerate(PROJECTS):
            share = count // 3 + (1 if n < count % 3 else 0)
            for remote_id in sim.call("seed_bulk", project, count=share, seed=40 + n):
                owner_of[remote_id] = project
        ids = sorted(owner_of)  # interleaved across projects, as a pasted list would be
        sim.call("request_log", clear=True)
        started = time.perf_counter()
        report = importing.import_threads("\n".join(ids), credential=None)
        elapsed = time.perf_counter() - started
        log = sim.call("request_log")
    retrieves = [entry for entry in log if entry.method == "GET"]
    by_project = Counter(
        name for search in searches for name, said in search.tried if not said.startswith("not asked")
    )
    busiest = max(by_project.values())
    allowed = busiest / (LIMIT_PER_MINUTE / 60)
    filed = dict(Thread.objects.values_list("remote_id", "credential__name"))
    wrong = sum(1 for remote_id, project in owner_of.items() if filed.get(remote_id) != project)
    print(
        f"locate     {count:,} IDs in {elapsed:.2f} s: {report.summary()}; {len(retrieves):,} retrieves "
        f"({len(retrieves) / count:.2f} per ID; by project {dict(sorted(by_project.items()))}); the limits "
        f"allow {allowed:.2f} s: ratio {elapsed / allowed:.3f}; filed under the wrong credential: {wrong}"
    )
    if wrong:
        problems.append(f"{wrong} IDs filed under the wrong credential")
    if elapsed > 1.2 * allowed:
        problems.append(f"{elapsed / allowed:.2f}× the time the limits allow (target 1.2×)")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, default=1000)
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    with benchmark_django(args.database, sqlite=args.sqlite):
        problems = run(args.ids)
    for problem in problems:
        print(f"MISSED: {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
