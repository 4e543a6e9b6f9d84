"""`lamplighter load`: config errors at start (exit 2, field named), verdict exit codes, report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fixtures.serving import serving
from loadtests.cli import main
from tests.support.load_servers import Server, sse_server_argv

pytestmark = pytest.mark.timeout(90)
WORKLOAD = [
    "--type",
    "shared_prefix",
    "--param",
    "num_groups=3",
    "--param",
    "num_prompts_per_group=4",
    "--param",
    "system_prompt_len=48",
    "--param",
    "question_len=8",
    "--param",
    "output_len=4",
]


def _slo(tmp_path: Path, **spec: object) -> Path:
    path = tmp_path / "slo.yaml"
    base = {
        "minSamples": 10,
        "maxErrorRatio": 0.0,
        "thresholds": [{"metric": "ttft", "percentile": 90, "max": 0.5}],
    }
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "lamplighter.llm-d.ai/v1alpha1",
                "kind": "SLO",
                "metadata": {"name": "t"},
                "spec": {**base, **spec},
            }
        )
    )
    return path


def test_bad_slo_fails_at_start_naming_field(tmp_path: Path, capsys) -> None:
    slo = _slo(tmp_path, thresholds=[{"metric": "ttf", "percentile": 90, "max": 1}])
    code = main(
        [
            "load",
            "--url",
            "http://127.0.0.1:9",
            "--model",
            "m",
            *WORKLOAD,
            "--slo",
            str(slo),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "slo.yaml: spec.thresholds[0].metric: unknown metric 'ttf'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_bad_workload_fails_at_start_naming_field(tmp_path: Path, capsys) -> None:
    wl = tmp_path / "wl.yaml"
    wl.write_text(
        "type: shared_prefix\nshared_prefix: {num_groups: 2, num_prompts_per_group: 2,"
        " system_prompt_len: 8, question_len: x, output_len: 2}\n"
    )
    code = main(["load", "--url", "http://127.0.0.1:9", "--model", "m", "--workload", str(wl)])
    assert code == 2
    assert "wl.yaml: shared_prefix.question_len: expected an integer" in capsys.readouterr().err


def test_run_pass_and_invalid(sse_server: Server, tmp_path: Path, capsys) -> None:
    stack = tmp_path / "stack.json"
    stack.write_text(
        json.dumps({"gateway_url": sse_server.url, "baseline_url": sse_server.url, "pods": []})
    )
    out = tmp_path / "both"
    code = main(
        [
            "load",
            "--stack-file",
            str(stack),
            "--target",
            "both",
            "--model",
            "m",
            *WORKLOAD,
            "--users",
            "3",
            "--max-requests",
            "24",
            "--slo",
            str(_slo(tmp_path)),
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "outcome: passed" in printed and "ttft" in printed
    for name in ("scheduler", "baseline"):
        assert len((out / name / "samples.jsonl").read_text().splitlines()) == 24
    html = (out / "summary.html").read_text()
    for png in ("ttft_cdf", "requests_per_pod", "hit_rate_over_time", "latency_vs_load"):
        assert (out / f"{png}.png").stat().st_size > 5000 and f"{png}.png" in html
    code = main(
        [
            "load",
            "--url",
            sse_server.url,
            "--model",
            "m",
            *WORKLOAD,
            "--max-requests",
            "5",
            "--slo",
            str(_slo(tmp_path, minSamples=50)),
            "--out",
            str(tmp_path / "few"),
        ]
    )
    assert code == 3


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (
            lambda d: ["--workload", str(_write(d / "bad.yaml", "type: [unclosed\n"))],
            "bad.yaml: cannot read",
        ),
        (lambda d: ["--workload", str(d / "absent.yaml")], "absent.yaml: cannot read"),
        (
            lambda d: [*WORKLOAD, "--stack-file", str(_write(d / "stack.json", "[1]"))],
            "stack.json: expected a JSON object",
        ),
        (
            lambda d: [
                *WORKLOAD,
                "--url",
                "http://127.0.0.1:9",
                "--rate",
                "5",
                "--stages",
                "10:5,-3:8",
            ],
            "stages[1].duration_s: must be > 0, got -3.0",
        ),
        (
            lambda d: [*WORKLOAD, "--url", "http://127.0.0.1:9", "--stages", "10:2.5"],
            "--stages '10:2.5': closed-loop USERS must be a whole number",
        ),
        (
            lambda d: [*WORKLOAD, "--url", "http://127.0.0.1:9", "--warmup", "-1"],
            "warmup_s: must be >= 0, got -1.0",
        ),
    ],
    ids=[
        "workload-yaml",
        "workload-missing",
        "stack-not-object",
        "stage-duration",
        "stage-users",
        "warmup",
    ],
)
def test_config_errors_exit_2_naming_the_problem(
    tmp_path: Path, capsys, make_args, message: str
) -> None:
    code = main(["load", "--model", "m", *make_args(tmp_path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _load_without_slo(url: str, out: Path) -> int:
    return main(["load", "--url", url, "--model", "m", *WORKLOAD, "--users", "2",
                 "--max-requests", "12", "--out", str(out)])


def test_load_without_slo_passes_when_every_request_succeeds(
        sse_server: Server, tmp_path: Path, capsys) -> None:
    code = _load_without_slo(sse_server.url, tmp_path / "ok")
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "outcome: passed" in printed


def test_load_without_slo_fails_when_any_request_failed(tmp_path: Path, capsys) -> None:
    argv = sse_server_argv("--fail-every", "4")
    with serving("sse-server-failing", argv, tmp_path / "server") as server:
        code = _load_without_slo(server.url, tmp_path / "failing")
    printed = capsys.readouterr().out
    assert code == 1, printed
    assert "outcome: failed" in printed
    assert "3 of 12 requests failed (first: status 503" in printed


def test_a_stream_cut_before_done_is_a_failed_request(tmp_path: Path, capsys) -> None:
    argv = sse_server_argv("--truncate-every", "3")
    with serving("sse-server-truncating", argv, tmp_path / "server") as server:
        code = _load_without_slo(server.url, tmp_path / "cut")
    printed = capsys.readouterr().out
    assert code == 1, printed
    assert "4 of 12 requests failed" in printed and "stream ended before [DONE]" in printed
    samples = [json.loads(line) for line in
               (tmp_path / "cut" / "samples.jsonl").read_text().splitlines()]
    cut = [s for s in samples if s["error"] == "stream ended before [DONE]"]
    assert len(cut) == 4 and all(s["status"] == 200 for s in cut)


def _printed_users(capsys, *args: str) -> int:
    code = main(["load", "--url", "http://127.0.0.1:9", "--model", "m", *WORKLOAD, *args,
                 "--print-spec"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    return int(json.loads(printed.out)["users"])


def test_an_open_loop_run_sizes_its_user_pool_from_rate_and_latency(capsys) -> None:
    """22 req/s at 2 s expected latency: 44 in flight, twice for headroom (the issue's 4-pod
    stack achieved 15.6 of 22 req/s with the old fixed 8 users)."""
    assert _printed_users(capsys, "--rate", "22") == 88
    assert _printed_users(capsys, "--rate", "22", "--expected-latency", "0.5") == 22
    assert _printed_users(capsys, "--rate", "1") == 8  # never below the closed-loop default
    assert _printed_users(capsys, "--arrival", "poisson", "--stages", "5:4,5:30") == 120


def test_explicit_users_and_closed_loop_keep_their_pool(capsys) -> None:
    assert _printed_users(capsys, "--rate", "22", "--users", "3") == 3
    assert _printed_users(capsys) == 8


def test_a_non_positive_expected_latency_is_a_config_error(capsys) -> None:
    code = main(["load", "--url", "http://127.0.0.1:9", "--model", "m", *WORKLOAD,
                 "--rate", "5", "--expected-latency", "0", "--print-spec"])
    err = capsys.readouterr().err
    assert code == 2 and "--expected-latency 0.0: must be > 0" in err


def test_target_both_reseeds_prompts_but_keeps_arrivals_when_pods_cannot_reset(
        tmp_path: Path, capsys) -> None:
    from fixtures.ports import PortAllocator
    from loadtests.cli import _cold_start
    from loadtests.runconfig import LoadSpec
    from loadtests.workloads import load_workload

    (port,) = PortAllocator().reserve_many(1)  # nothing listens: the reset cannot happen
    stack = tmp_path / "stack.json"
    stack.write_text(json.dumps({"pods": [{"url": f"http://127.0.0.1:{port}"}]}))
    workload = load_workload({"type": "random", "seed": 5, "random": {"input_len": 4,
                                                                       "output_len": 2}})
    spec = LoadSpec("http://x", "m", workload, arrival="poisson", rate=5)
    cold = _cold_start(spec, stack)
    assert cold.workload.seed == 6 and cold.arrivals_seed == 5
    assert "prompts are reseeded (seed 6; arrivals keep seed 5)" in capsys.readouterr().out


def _both(tmp_path: Path, url: str, pods: list[str], *model: str) -> tuple[int, Path]:
    stack = tmp_path / "stack.json"
    stack.write_text(json.dumps({"gateway_url": url, "baseline_url": url,
                                 "pods": [{"name": f"p{i}", "url": u, "metrics_url": u}
                                          for i, u in enumerate(pods)]}))
    out = tmp_path / "both"
    code = main(["load", "--stack-file", str(stack), "--target", "both", *model, *WORKLOAD,
                 "--users", "2", "--max-requests", "12", "--out", str(out)])
    return code, out


def test_target_both_resets_the_pods_caches_so_the_gateway_run_starts_cold(
        real_simulator: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _both(tmp_path, real_simulator.url, [real_simulator.url])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "prefix caches reset on 1 pods before the next run" in printed
    # one pod serves both runs: without the reset the gateway run would hit the baseline's
    # prefixes from its first request; with it, both runs see the same cached tokens
    cached = {name: sum(json.loads(line).get("cached_tokens") or 0 for line in
                        (out / name / "samples.jsonl").read_text().splitlines())
              for name in ("baseline", "scheduler")}
    assert cached["scheduler"] == cached["baseline"], cached


def test_target_both_reseeds_when_the_pods_cannot_reset(
        sse_server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _both(tmp_path, sse_server.url, [sse_server.url], "--model", "m")
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "the next run's prompts are reseeded (seed" in printed


def test_without_an_slo_a_run_that_measured_nothing_is_invalid_not_passed() -> None:
    from loadtests.api import LoadResult
    from loadtests.cli import _outcome_without_slo
    from loadtests.samples import Sample
    from loadtests.validity import Validity

    warmup_only = [Sample(0, "g", "completions", True, "u", 0.0, ttft_s=0.1, status=200,
                          warmup=True)]
    result = LoadResult(samples=warmup_only, samples_path=Path("s.jsonl"), exit_code=0,
                        validity=Validity(), log_path=Path("locust.log"), summary={})
    assert _outcome_without_slo(result, "") == "invalid"
    measured = LoadResult(samples=[Sample(0, "g", "completions", True, "u", 0.0, ttft_s=0.1,
                                         status=200)], samples_path=Path("s.jsonl"),
                          exit_code=0, validity=Validity(), log_path=Path("locust.log"),
                          summary={})
    assert _outcome_without_slo(measured, "") == "passed"
    assert _outcome_without_slo(measured, "FAIL 1 of 1 requests failed") == "failed"
