"""A newcomer's first `manage.py runserver`, without DEBUG and without collectstatic, serves pages."""

import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_runserver_without_debug_or_collectstatic_serves_pages_and_static_files(tmp_path):
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DEBUG", "THREADSITE_TESTING", "DATABASE_URL", "REDIS_URL")
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in server.stdout], daemon=True).start()
    try:
        printed, deadline = [], time.monotonic() + 30
        while not any("Quit the server with" in line for line in printed):
            assert server.poll() is None, "runserver stopped:\n" + "".join(printed)
            try:
                printed.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail("runserver did not start:\n" + "".join(printed))
        # What a newcomer reads first: no warning about a static directory that only collectstatic makes.
        assert not [line for line in printed if "Warning:" in line or "No directory at" in line], printed
        page = requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=5)
        assert page.status_code == 200, page.text[:500]
        assert 'href="/static/threadsite/site.css"' in page.text
        assert (
            requests.get(f"http://127.0.0.1:{port}/static/threadsite/site.css", timeout=5).status_code == 200
        )
    finally:
        server.terminate()
        server.wait(10)
