"""How many streamed requests/s can ONE load-generator process sustain?

Against a zero-latency simulator on loopback (all latency coefficients 0), climb a rate
ladder with one Locust process (lamplighter) and with inference-perf (``num_workers: 1``).
Both columns are the same quantity: completed successful requests per second of the run
(inference-perf's ``successes.throughput``; for Locust, successes over the span of the
measured requests), not one tool's send rate against the other's completions.
A rung is sustained when the achieved rate is >= 95% of the target, no request failed and
the generator's busiest process averaged < 90% CPU over the rung. Prints the highest
sustained rung of each. On a small shared machine the simulator competes for the same
cores, so both figures are lower bounds; compare them with each other, on the same host.

    .venv/bin/python benchmarks/generator_capacity.py [--rates 50,100,200,400,800]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fixtures.localstack import SimulatorParams, running_simulator  # noqa: E402
from loadtests.api import LoadProcess, LoadSpec  # noqa: E402
from loadtests.peers import (  # noqa: E402
    add_peer_arguments,
    ensure_venv,
    inference_perf_config,
    write_word_tokenizer,
)
from loadtests.workloads import load_workload  # noqa: E402

CPU_LIMIT = 90.0
WARMUP_SAMPLES_S = 1.5


@contextmanager
def zero_latency_simulator(log_dir: Path) -> Iterator[str]:
    """A simulator whose steps cost nothing: the load generator is the only bottleneck."""
    params = SimulatorParams(step_base_ms=0, prefill_ms_per_token=0, decode_ms_per_seq=0,
                             num_gpu_blocks=65536, max_num_seqs=4096,
                             extra_args=("--log-level", "WARNING"))
    with running_simulator(log_dir, params) as served:
        yield served.url


class CpuWatch:
    """Mean CPU% of the busiest process in a tree, skipping its start-up."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.samples: dict[int, list[float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        procs: dict[int, psutil.Process] = {}
        start = time.monotonic()
        while not self.stop.wait(0.5):
            try:
                tree = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for p in tree:
                if p.pid not in procs:
                    procs[p.pid] = p
                    p.cpu_percent(None)
                    continue
                try:
                    value = p.cpu_percent(None)
                except psutil.NoSuchProcess:
                    continue
                if time.monotonic() - start > WARMUP_SAMPLES_S:
                    self.samples.setdefault(p.pid, []).append(value)

    def busiest(self) -> float:
        self.stop.set()
        self.thread.join()
        means = [sum(v) / len(v) for v in self.samples.values() if v]
        return max(means, default=0.0)


def lamplighter_rung(url: str, rate: float, duration: float, out: Path) -> tuple[float, int, float]:
    spec = LoadSpec(
        base_url=url,
        model="sim-model",
        workload=WORKLOAD,
        users=64,
        arrival="constant",
        rate=rate,
        duration_s=duration,
        request_timeout_s=30,
    )
    with LoadProcess(spec, out) as proc:
        assert proc.proc is not None
        watch = CpuWatch(proc.proc.pid)
        proc.wait()
        cpu = watch.busiest()
        res = proc.result()
    # the same quantity inference-perf reports: completed successes per second of the run
    # (not our send rate), so the two columns compare like with like
    achieved = float(res.summary["throughput"]["requests_per_s"])
    if res.validity.cpu_warning:
        cpu = max(cpu, CPU_LIMIT)
    return achieved, res.summary["errors"], cpu


def inference_perf_rung(
    exe: Path, tok: Path, url: str, rate: float, duration: float, out: Path
) -> tuple[float, int, float]:
    spec = LoadSpec(
        base_url=url,
        model="sim-model",
        workload=WORKLOAD_SP,
        arrival="constant",
        rate=rate,
        duration_s=duration,
    )
    cfg = inference_perf_config(spec, tok, out / "report", num_workers=1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "inference-perf.yaml").write_text(json.dumps(cfg))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with (out / "inference-perf.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(exe), "--config_file", str(out / "inference-perf.yaml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=out,
            env=env,
            start_new_session=True,
        )
        watch = CpuWatch(proc.pid)
        try:
            proc.wait(timeout=duration + 120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        cpu = watch.busiest()
    files = sorted((out / "report").rglob("summary_lifecycle_metrics.json"))
    if not files:
        return 0.0, -1, cpu
    summary = json.loads(files[-1].read_text())
    achieved = float(summary["successes"]["throughput"]["requests_per_sec"])
    failures = int((summary.get("failures") or {}).get("count", 0))
    return achieved, failures, cpu


def ladder(
    name: str, rates: list[float], run: Callable[[float], tuple[float, int, float]]
) -> float:
    best = 0.0
    for rate in rates:
        achieved, errors, cpu = run(rate)
        ok = achieved >= 0.95 * rate and errors == 0 and cpu < CPU_LIMIT
        print(
            f"{name:16}{rate:>8.0f}{achieved:>10.1f}{errors:>8}{cpu:>8.0f}%   "
            f"{'sustained' if ok else 'NOT sustained'}",
            flush=True,
        )
        if not ok:
            break
        best = rate
    return best


WORKLOAD = load_workload(
    {
        "type": "shared_prefix",
        "seed": 1,
        "shared_prefix": {
            "num_groups": 16,
            "num_prompts_per_group": 64,
            "system_prompt_len": 64,
            "question_len": 32,
            "output_len": 16,
        },
    }
)
WORKLOAD_SP = WORKLOAD


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="200,400,800,1200,1600,2000,2400,3200")
    p.add_argument("--duration", type=float, default=6.0, help="seconds per rung")
    add_peer_arguments(p)
    p.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="ll-capacity-")))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rates = [float(r) for r in args.rates.split(",")]
    print(
        f"zero-latency simulator, shared_prefix 64+32 -> 16 streamed tokens, "
        f"{args.duration:.0f}s per rung, host CPUs {os.cpu_count()}; output in {args.out}"
    )
    print(f"{'generator':16}{'target':>8}{'achieved':>10}{'errors':>8}{'CPU':>9}")
    with zero_latency_simulator(args.out) as url:
        ours = ladder(
            "lamplighter",
            rates,
            lambda r: lamplighter_rung(url, r, args.duration, args.out / f"lamplighter-{r:.0f}"),
        )
        theirs = None
        if not args.skip_inference_perf:
            exe = ensure_venv(args.bench_venv, args.python)
            tok = write_word_tokenizer(args.bench_venv, args.bench_venv / "word-tokenizer")
            theirs = ladder(
                "inference-perf",
                rates,
                lambda r: inference_perf_rung(
                    exe, tok, url, r, args.duration, args.out / f"inference-perf-{r:.0f}"
                ),
            )
    print(
        f"\nhighest sustained streamed rate, one generator process: lamplighter {ours:.0f}/s"
        + ("" if theirs is None else f", inference-perf {theirs:.0f}/s")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
