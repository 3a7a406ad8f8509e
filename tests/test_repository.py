"""The checkout stays clean: what a build or a test run leaves behind is ignored, never tracked."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def git(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_build_metadata_is_ignored_and_not_tracked():
    # pip install -e . writes threadsite.egg-info/ beside the code.
    assert git("check-ignore", "--no-index", "-q", "threadsite.egg-info/PKG-INFO").returncode == 0
    assert git("ls-files", "--", "*.egg-info/*").stdout == ""
