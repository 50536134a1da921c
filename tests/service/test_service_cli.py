"""`mmindex serve` as a user runs it: a real process, a real socket, the token from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import run_cli
from tests.service.conftest import free_port

TOKEN = "cli-token-never-in-logs"


def get(url: str, **headers) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_runs_uvicorn_over_the_index(service_index, workers):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mmindex.cli", "serve", "--index", str(service_index),
                             "--port", str(port), "--workers", str(workers), "--threads", "3"],
                            env={**os.environ, "MMINDEX_TOKEN": TOKEN}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = get(base + "/api/health")
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        assert status == 200 and json.loads(body)["features"]["write"] is True
        assert get(base + "/")[0] == 200
        for _ in range(4):  # whichever worker answers has the index and the settings
            status, body = get(base + "/api/concepts?q=tab&limit=3")
            assert status == 200 and "tabby" in body.decode()
            # every process sized its thread pool; the metrics request itself holds one thread
            assert json.loads(get(base + "/api/metrics")[1])["threads"] == {"size": 3, "busy": 1, "queued": 0}
        req = urllib.request.Request(base + "/api/media?path=/etc", method="DELETE",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("removing /etc must be refused")
        except urllib.error.HTTPError as e:
            assert e.code == 403
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "Uvicorn running on" in out or "serving" in out
    assert out.count("Started server process") == workers
    assert TOKEN not in out


def test_serve_help_and_bad_options():
    assert "--token" in run_cli("serve", "--help").stdout
    proc = run_cli("serve", "--private", "--index", "/nonexistent", check=False, env={"MMINDEX_TOKEN": ""})
    assert proc.returncode != 0 and "--private needs --token" in proc.stderr
    missing = run_cli("serve", "--index", "/nonexistent/index", check=False)
    assert missing.returncode == 1 and "no index" in missing.stderr and "Traceback" not in missing.stderr
