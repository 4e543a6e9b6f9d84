"""run_load against loopback servers: exact request caps, tight TTFT, distributed merge."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from fixtures.serving import serving
from loadtests.api import LoadProcess, LoadSpec, run_load
from loadtests.runconfig import Arrival
from loadtests.slo import evaluate, parse_slo
from loadtests.workloads import generate, load_workload
from tests.support.load_servers import Server, sse_server_argv

pytestmark = pytest.mark.timeout(90)

WL = load_workload(
    {
        "type": "shared_prefix",
        "seed": 11,
        "shared_prefix": {
            "num_groups": 4,
            "num_prompts_per_group": 5,
            "system_prompt_len": 64,
            "question_len": 16,
            "output_len": 8,
        },
    }
)
SLO = parse_slo(
    {
        "spec": {
            "minSamples": 20,
            "maxErrorRatio": 0.0,
            "thresholds": [
                {"metric": "ttft", "percentile": 90, "max": 0.5},
                {"metric": "itl", "percentile": 99, "max": 0.05},
            ],
        }
    }
)


def _server_ttfts(server: Server) -> list[float]:
    return list(httpx.get(server.url + "/server_stats").json()["ttft_s"])


def test_exact_cap_and_one_sample_per_request(sse_server: Server, tmp_path: Path) -> None:
    before = len(_server_ttfts(sse_server))
    spec = LoadSpec(
        base_url=sse_server.url, model="m", workload=WL, users=4, max_requests=60, duration_s=30
    )
    result = run_load(spec, tmp_path)
    assert result.exit_code == 0, result.log_path.read_text()[-2000:]
    assert sorted(s.request_id for s in result.samples) == list(range(60))
    server = _server_ttfts(sse_server)[before:]
    assert len(server) == 60
    s = result.samples[0]
    assert s.ok and s.pod == "sse-0" and s.completion_tokens == 8 and len(s.itl_s) == 7
    assert s.prompt_tokens == 80 and s.tpot_s is not None and s.ntpot_s is not None
    # shared sequence: request i carries workload prompt i (cycled), groups follow the seed
    assert [x.group for x in sorted(result.samples, key=lambda x: x.request_id)][:20] == [
        r.group for r in generate(WL)
    ]
    assert (tmp_path / "locust_stats.csv").exists()
    assert "TTFT" not in (tmp_path / "locust_stats.csv").read_text()  # no polluted rows


def test_ttft_is_timed_at_the_first_chunk_not_at_the_stream_end(tmp_path: Path) -> None:
    """A buffering client would see TTFT ~ E2E: here 7 inter-token gaps of 40 ms (280 ms)
    after the server's first chunk. The p50 gap to the server's own TTFT over 30 requests
    must stay under 100 ms: wide of both a busy host's scheduling noise and the 280 ms a
    buffering client adds (the 3 ms accuracy goal is benchmarks/measurement_accuracy.py's)."""
    argv = sse_server_argv("--ttft-ms", "20", "--itl-ms", "40")
    with serving("sse-server-slow-itl", argv, tmp_path / "server") as server:
        spec = LoadSpec(base_url=server.url, model="m", workload=WL, users=4,
                        max_requests=30, duration_s=30)
        result = run_load(spec, tmp_path / "load")
        served = _server_ttfts(server)
    assert result.exit_code == 0, result.log_path.read_text()[-2000:]
    gap = np.median([x.ttft_s for x in result.samples]) - np.median(served)
    assert 0 <= gap <= 0.100, f"client-server TTFT p50 gap {gap * 1000:.2f} ms"


def test_two_processes_one_sample_per_request_same_verdict(
    sse_server: Server, tmp_path: Path
) -> None:
    single = run_load(
        LoadSpec(base_url=sse_server.url, model="m", workload=WL, users=4, max_requests=40),
        tmp_path / "one",
    )
    multi = run_load(
        LoadSpec(
            base_url=sse_server.url, model="m", workload=WL, users=4, max_requests=40, processes=2
        ),
        tmp_path / "two",
    )
    for r in (single, multi):
        assert sorted(s.request_id for s in r.samples) == list(range(40))
    assert len({s.worker for s in multi.samples}) == 2
    by_id = {s.request_id: s.group for s in single.samples}
    assert all(by_id[s.request_id] == s.group for s in multi.samples)
    v1, v2 = (evaluate(SLO, r.samples, r.validity) for r in (single, multi))
    assert v1.outcome == v2.outcome == "passed"
    assert [(v.metric, v.passed) for v in v1.verdicts] == [
        (v.metric, v.passed) for v in v2.verdicts
    ]


def _open_loop(
    server: Server, arrival: Arrival, rate: float, users: int, duration_s: float
) -> LoadSpec:
    return LoadSpec(
        base_url=server.url,
        model="m",
        workload=WL,
        users=users,
        arrival=arrival,
        rate=rate,
        duration_s=duration_s,
    )


def test_open_loop_rate_and_users_running_out(sse_server: Server, tmp_path: Path) -> None:
    ok = run_load(
        _open_loop(sse_server, "poisson", rate=40, users=8, duration_s=2), tmp_path / "ok"
    )
    assert ok.validity.valid, ok.validity.reasons
    assert ok.validity.achieved_rate is not None and ok.validity.target_rate is not None
    # ~80 arrivals expected; Poisson sd ~ 9: allow 40..120
    assert 40 <= len(ok.samples) <= 120
    starved = run_load(
        _open_loop(sse_server, "constant", rate=100, users=1, duration_s=1.5), tmp_path / "bad"
    )
    assert not starved.validity.valid and starved.validity.users_ran_out > 0
    assert evaluate(SLO, starved.samples, starved.validity).passed is None


def test_errors_and_chat_non_stream(tmp_path: Path) -> None:
    with serving("sse-server", sse_server_argv("--fail-every", "5"), tmp_path) as server:
        res = run_load(
            LoadSpec(
                base_url=server.url,
                model="m",
                workload=WL,
                users=2,
                api="chat",
                stream=False,
                max_requests=20,
            ),
            tmp_path / "run",
        )
    assert len(res.samples) == 20
    failed = [s for s in res.samples if not s.ok]
    assert len(failed) == 4 and all(
        s.status == 503 and "injected" in (s.error or "") for s in failed
    )
    assert res.summary["error_ratio"] == pytest.approx(0.2)
    assert all(
        s.e2e_s and s.ttft_s is None and s.completion_tokens == 8 for s in res.samples if s.ok
    )
    # 16 successes: enough for a verdict when the SLO asks for 16 (minSamples counts successes)
    verdict = evaluate(replace(SLO, min_samples=16), res.samples, res.validity)
    assert verdict.passed is False
    assert evaluate(SLO, res.samples, res.validity).outcome == "invalid"  # 16 < 20


def test_against_real_simulator(real_simulator: Server, tmp_path: Path) -> None:
    res = run_load(
        LoadSpec(
            base_url=real_simulator.url, model="sim-model", workload=WL, users=2, max_requests=20
        ),
        tmp_path,
    )
    assert len(res.samples) == 20 and all(s.ok for s in res.samples), res.samples[0].error
    assert {s.pod for s in res.samples} == {"sim-0"}
    assert all(s.prompt_tokens == 80 and s.completion_tokens == 8 for s in res.samples)
    # 4 groups x 64-token prefix: every group's later prompts hit its cached prefix blocks
    assert res.summary["hit_rate"] and res.summary["hit_rate"] > 0.3


PROXY_PREFIX = "/api/v1/namespaces/ns/services/lamplighter-baseline:80/proxy"


def test_a_base_url_with_a_path_is_kept(tmp_path: Path) -> None:
    """The cluster baseline is the API server's service proxy: requests go under its path
    (the server answers 404 anywhere else, so a client that drops the path fails)."""
    argv = sse_server_argv("--prefix", PROXY_PREFIX)
    with serving("sse-prefixed", argv, tmp_path / "server") as server:
        result = run_load(
            LoadSpec(base_url=server.url + PROXY_PREFIX + "/", model="m", workload=WL,
                     users=2, max_requests=10, duration_s=20),
            tmp_path / "load",
        )
        served = httpx.get(server.url + "/server_stats").json()["requests"]
    assert result.exit_code == 0, result.log_path.read_text()[-2000:]
    assert len(result.samples) == 10 and all(s.ok for s in result.samples), [
        s.error for s in result.samples if not s.ok]
    assert {s.url for s in result.samples} == {PROXY_PREFIX + "/v1/completions"}
    assert served == 10


def test_a_killed_master_takes_its_forked_workers_along(sse_server: Server,
                                                        tmp_path: Path) -> None:
    """Locust stops its ``--processes`` workers from an atexit hook, which a SIGKILL of the
    master never runs (pytest killed: the master dies with it); the workers must die too,
    not wait out their 60 s master-heartbeat timeout."""
    spec = LoadSpec(base_url=sse_server.url, model="m", workload=WL, users=4,
                    max_requests=5000, duration_s=30, processes=2)
    with LoadProcess(spec, tmp_path) as load:
        assert load.proc is not None
        master = psutil.Process(load.proc.pid)
        for _ in range(200):
            workers = master.children()
            if len(workers) == 2:
                break
            time.sleep(0.05)
        assert len(workers) == 2, (workers, load.log_path.read_text()[-2000:])
        master.kill()
        _, alive = psutil.wait_procs(workers, timeout=5)
        assert not alive, f"workers outlived their master: {alive}"
