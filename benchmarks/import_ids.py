"""Import 100,000 IDs from a file, on the embedded default (SQLite) and on PostgreSQL; print the times.

    .venv/bin/python benchmarks/import_ids.py [--count 100000] [--postgres postgres://postgres@127.0.0.1:5432/threadsite_bench_import]

Each backend gets a fresh database, migrated before the clock starts. The figure is the wall time of
`manage.py import_threads FILE --credential bench --no-check` in a child process (parsing, deduplication
against the table, inserts), and a second run of the same file (everything already tracked).
The API check that normally follows runs in the background and is not part of the figure.
"""

import argparse
import os
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIXES = ["thread", "conv", "cthr"]


def make_file(path: Path, count: int) -> None:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits
    with path.open("w") as out:
        for n in range(count):
            remote_id = f"{PREFIXES[n % 3]}_{''.join(rng.choices(alphabet, k=24))}"
            if n % 4 == 0:
                out.write(f"2026-10-{n % 28 + 1:02d} INFO run run_{n:08d}x on {remote_id} ok\n")
            else:
                out.write(remote_id + "\n")
        # Some duplicates, as real exports have.
        out.writelines(f"{PREFIXES[0]}_dup{n % 100:06d}\n" for n in range(200))


def manage(env, *args, stdin=None):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )


def run(label: str, env: dict, path: Path) -> None:
    manage(env, "migrate", "--noinput")
    setup = (
        "from threads_app.models import Credential, Thread;"
        "Thread.objects.all().delete(); Credential.objects.filter(name='bench').delete();"
        "c = Credential(name='bench', base_url='http://127.0.0.1:9/v1');"
        "c.api_key = 'sk-bench-0000'; c.save()"
    )
    manage(env, "shell", "-c", setup)
    for attempt in ("first import", "same file again"):
        started = time.perf_counter()
        result = manage(env, "import_threads", str(path), "--credential", "bench", "--no-check")
        elapsed = time.perf_counter() - started
        print(f"{label:<11} {attempt:<16} {elapsed:6.2f} s   {result.stdout.strip().splitlines()[-1]}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/threadsite_bench_import")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ids.txt"
        make_file(path, args.count)
        print(f"{args.count:,} IDs in {path.stat().st_size / 1e6:.1f} MB (a quarter as log lines)")
        base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        base["THREADSITE_INPROCESS_WORKERS"] = "0"
        sqlite = dict(base, DATABASE_URL=f"sqlite:///{tmp}/bench.sqlite3")
        run("SQLite", sqlite, path)
        dbname = args.postgres.rsplit("/", 1)[1]
        admin = args.postgres.rsplit("/", 1)[0] + "/postgres"
        subprocess.run(["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {dbname}"], check=True)
        subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {dbname}"], check=True)
        run("PostgreSQL", dict(base, DATABASE_URL=args.postgres), path)


if __name__ == "__main__":
    main()
