"""Locust's web UI shows the LLM tables with live numbers, checked in headless Chromium.

CI needs the Debian packages ``chromium`` (and ``fonts-dejavu-core`` for readable text);
without a chromium binary the browser part is skipped with that reason.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from loadtests.api import LoadProcess, LoadSpec, wait_ready
from loadtests.workloads import load_workload
from tests.support.load_servers import Server, reserved_port

pytestmark = pytest.mark.timeout(90)
WL = load_workload(
    {
        "type": "shared_prefix",
        "seed": 5,
        "shared_prefix": {
            "num_groups": 4,
            "num_prompts_per_group": 8,
            "system_prompt_len": 64,
            "question_len": 16,
            "output_len": 16,
        },
    }
)


def _chromium() -> str | None:
    return (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )


def _browser(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1400,900",
        "--virtual-time-budget=6000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def _live_rows(web: str) -> list[dict]:
    stats = httpx.get(web + "/stats/requests", timeout=5).json()
    tables = {t["key"]: t["data"] for t in stats.get("extended_stats", [])}
    return list(tables.get("llm-latency", []))


def test_dashboard_shows_llm_tables(sse_server: Server, tmp_path: Path, run_dir: Path) -> None:
    """Live LLM tables in Locust's web UI, read by headless Chromium (screenshot in the run)."""
    spec = LoadSpec(base_url=sse_server.url, model="m", workload=WL, users=2, duration_s=40)
    with reserved_port() as port, LoadProcess(spec, tmp_path, web_port=port):
        web = f"http://127.0.0.1:{port}"
        wait_ready(web + "/", timeout_s=20)
        deadline = time.monotonic() + 20
        while not (rows := _live_rows(web)) or rows[0]["count"] < 5:
            assert time.monotonic() < deadline, "no live LLM stats"
            time.sleep(0.3)
        ttft = next(r for r in rows if r["name"] == "TTFT")
        assert 15.0 < ttft["p50"] < 60.0  # server TTFT is 20 ms
        assert httpx.get(web + "/lamplighter/llm_stats.csv").text.startswith("metric,count")
        binary = _chromium()
        if binary is None:
            pytest.skip("chromium not installed (CI: apt-get install -y chromium)")
        url = web + "/?tab=llm-latency"
        dom = _browser(binary, tmp_path / "profile", "--dump-dom", url)
        shot = run_dir / "dashboard.png"
        _browser(binary, tmp_path / "profile2", f"--screenshot={shot}", url)
    assert "p90 (ms)" in dom.stdout and "TTFT" in dom.stdout and "ITL" in dom.stdout, dom.stderr
    assert "LLM throughput" in dom.stdout and "LLM pods" in dom.stdout
    assert shot.exists() and shot.stat().st_size > 10_000
