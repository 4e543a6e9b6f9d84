"""``lamplighter load``: drive load at a stack, judge it against an SLO file, write a report.

Exit status: 0 passed (without ``--slo``: valid and every measured request succeeded), 1
failed (without ``--slo``: any measured request failed), 3 invalid (CPU warning, achieved
rate < 95% of target, or, without ``--slo``, no request measured), 2 configuration error
(the message names the field).
``--target both`` runs the baseline (round robin) and then the gateway on the same arrivals,
resetting every pod's prefix cache in between (or, where the pods cannot, reseeding the
gateway run's prompts: seed + 1, arrivals kept) so the gateway does not start on the
baseline's warm caches; it plots them side by side and the verdict is the gateway's. An
open-loop run without ``--users`` sizes its user pool from the rate and
``--expected-latency`` (``loadtests.runconfig.open_loop_users``), so the offered rate is
achieved and saturation shows as queueing at the server.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from loadtests.api import LoadProcess, LoadResult
from loadtests.caches import reset_prefix_caches
from loadtests.plots import render_summary
from loadtests.runconfig import (
    CLOSED_LOOP_USERS,
    Arrival,
    LoadSpec,
    Stage,
    open_loop_users,
    spec_to_json,
)
from loadtests.slo import SloError, SloReport, SloSpec, evaluate, load_slo
from loadtests.workloads import WorkloadError, WorkloadSpec, load_workload

__all__ = ["main", "register", "run"]

EXIT = {"passed": 0, "failed": 1, "config": 2, "invalid": 3}


class ConfigError(ValueError):
    pass


def _add_arguments(p: argparse.ArgumentParser) -> None:
    target = p.add_argument_group("target")
    target.add_argument("--url", help="OpenAI-compatible base URL (gateway)")
    target.add_argument("--stack-file", type=Path, help="JSON from `lamplighter up`")
    target.add_argument(
        "--target",
        choices=("gateway", "baseline", "both"),
        default="gateway",
        help="with --stack-file: which URL to load (both = compare)",
    )
    target.add_argument("--model", help="model name (default: first of GET /v1/models)")
    wl = p.add_argument_group("workload")
    wl.add_argument("--workload", type=Path, help="workload YAML/JSON (see loadtests.workloads)")
    wl.add_argument("--type", dest="wl_type", choices=("shared_prefix", "random", "multi_turn"))
    wl.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=INT",
        help="workload parameter, repeatable (e.g. num_groups=32)",
    )
    wl.add_argument("--seed", type=int, help="workload seed (overrides the file)")
    wl.add_argument("--api", choices=("completions", "chat"), default="completions")
    wl.add_argument("--no-stream", action="store_true")
    load = p.add_argument_group("load")
    load.add_argument("--users", type=int, default=None,
                      help=f"simulated users (default: closed loop {CLOSED_LOOP_USERS}; open "
                           "loop sized from the peak rate x --expected-latency x 2, at least "
                           f"{CLOSED_LOOP_USERS})")
    load.add_argument("--expected-latency", type=float, default=2.0,
                      help="seconds per request assumed when sizing an open-loop user pool")
    load.add_argument("--rate", type=float, help="requests/s (open loop)")
    load.add_argument("--arrival", choices=("closed", "poisson", "constant"))
    load.add_argument("--duration", type=float, default=30.0, help="seconds after warm-up")
    load.add_argument("--warmup", type=float, default=0.0, help="seconds excluded from verdicts")
    load.add_argument("--stages", help="ladder 'SECONDS:RATE,...' (open) or 'SECONDS:USERS,...'")
    load.add_argument("--max-requests", type=int)
    load.add_argument("--processes", type=int, default=1)
    load.add_argument("--header", action="append", default=[], metavar="NAME=VALUE")
    out = p.add_argument_group("verdict and output")
    out.add_argument("--slo", type=Path, help="SLO YAML (see loadtests.slo)")
    out.add_argument("--out", type=Path, help="output folder (default reports/load-<time>)")
    out.add_argument("--web", action="store_true", help="run with Locust's web UI")
    out.add_argument("--web-port", type=int, default=8089)
    out.add_argument("--timeout", type=float, help="kill the run after this many seconds")
    out.add_argument(
        "--print-spec",
        action="store_true",
        help="print the run's LoadSpec JSON (for loadtests/deploy) and exit",
    )


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "load",
        help="drive load, check an SLO, write a report",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    _add_arguments(p)
    p.set_defaults(func=run)


def _workload(args: argparse.Namespace) -> WorkloadSpec:
    if args.workload and args.wl_type:
        raise ConfigError("--workload and --type are exclusive")
    if args.workload:
        spec = load_workload(args.workload)  # names the file and field on any error
    elif args.wl_type:
        params: dict[str, int] = {}
        for item in args.param:
            key, sep, value = item.partition("=")
            if not sep or not value.lstrip("-").isdigit():
                raise ConfigError(f"--param {item!r}: expected KEY=INTEGER")
            params[key] = int(value)
        spec = load_workload({"type": args.wl_type, args.wl_type: params}, "--type/--param")
    else:
        raise ConfigError("workload: give --workload FILE or --type TYPE --param KEY=VALUE ...")
    return spec if args.seed is None else replace(spec, seed=args.seed)


def _stages(text: str | None, open_loop: bool) -> list[Stage]:
    stages = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        dur, _, level = part.partition(":")
        try:
            d, v = float(dur), float(level)
        except ValueError:
            raise ConfigError(f"--stages {part!r}: expected SECONDS:LEVEL") from None
        if not open_loop and v != int(v):
            raise ConfigError(f"--stages {part!r}: closed-loop USERS must be a whole number")
        stages.append(Stage(d, rate=v) if open_loop else Stage(d, users=int(v)))
    return stages


def _urls(args: argparse.Namespace) -> dict[str, str]:
    if args.stack_file:
        try:
            stack = json.loads(args.stack_file.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--stack-file {args.stack_file}: {exc}") from exc
        if not isinstance(stack, dict):
            raise ConfigError(f"--stack-file {args.stack_file}: expected a JSON object")
        keys = {
            "gateway": ["gateway_url"],
            "baseline": ["baseline_url"],
            "both": ["baseline_url", "gateway_url"],
        }[args.target]
        for key in keys:
            if not stack.get(key):
                raise ConfigError(f"--stack-file {args.stack_file}: {key}: missing")
        names = {"gateway_url": "scheduler", "baseline_url": "baseline"}
        return {names[k]: str(stack[k]).rstrip("/") for k in keys}
    if not args.url:
        raise ConfigError("target: give --url or --stack-file")
    return {"scheduler": args.url.rstrip("/")}


def _model(url: str) -> str:
    import httpx

    try:
        return str(httpx.get(url + "/v1/models", timeout=5).json()["data"][0]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
        raise ConfigError(f"--model: not given and GET {url}/v1/models failed: {exc}") from exc


def _arrival(args: argparse.Namespace) -> Arrival:
    if args.arrival:
        return cast(Arrival, args.arrival)
    return "poisson" if args.rate else "closed"


def _users(args: argparse.Namespace, arrival: Arrival, stages: list[Stage]) -> int:
    """``--users``, or the pool an open-loop run at its peak rate needs."""
    if args.users is not None:
        return int(args.users)
    if arrival == "closed":
        return CLOSED_LOOP_USERS
    if args.expected_latency <= 0:
        raise ConfigError(f"--expected-latency {args.expected_latency}: must be > 0")
    peak = max([args.rate or 0.0, *[s.rate or 0.0 for s in stages]])
    if peak <= 0:  # spec.validate() names the missing rate
        return CLOSED_LOOP_USERS
    return open_loop_users(peak, args.expected_latency)


def build_specs(args: argparse.Namespace) -> tuple[dict[str, LoadSpec], SloSpec | None]:
    """All configuration checks happen here, before any load is sent."""
    slo = load_slo(args.slo) if args.slo else None
    workload = _workload(args)
    arrival = _arrival(args)
    stages = _stages(args.stages, arrival != "closed")
    headers = {}
    for item in args.header:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--header {item!r}: expected NAME=VALUE")
        headers[name] = value
    urls = _urls(args)
    model = args.model or _model(next(iter(urls.values())))
    specs = {}
    for name, url in urls.items():
        spec = LoadSpec(
            base_url=url,
            model=model,
            workload=workload,
            api=args.api,
            stream=not args.no_stream,
            users=_users(args, arrival, stages),
            arrival=arrival,
            rate=args.rate,
            max_requests=args.max_requests,
            duration_s=args.duration,
            warmup_s=args.warmup,
            processes=args.processes,
            extra_headers=headers,
            stages=stages,
        )
        try:
            spec.validate()
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        specs[name] = spec
    return specs, slo


def print_table(name: str, result: LoadResult, report: SloReport | None) -> None:
    s = result.summary
    print(
        f"\n== {name}: {s['count']} requests, error ratio {s['error_ratio']:.3f}, "
        f"{s['throughput']['requests_per_s']:.2f} req/s, "
        f"{s['throughput']['output_tokens_per_s']:.0f} output tok/s, hit rate "
        f"{'-' if s['hit_rate'] is None else format(s['hit_rate'], '.3f')}"
    )
    print(f"{'metric':8}{'n':>8}{'p50 ms':>10}{'p90 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for m in ("ttft", "tpot", "itl", "e2e"):
        row = s[m]
        cells = "".join(
            f"{row[p] * 1000:>10.1f}" if p in row else f"{'-':>10}"
            for p in ("p50", "p90", "p95", "p99")
        )
        print(f"{m:8}{row['count']:>8}{cells}")
    print(f"per pod: {s['per_pod']}")
    reasons = report.invalid_reasons if report else result.validity.reasons
    if reasons:
        print("INVALID: " + "; ".join(reasons))
    if report:
        for v in report.verdicts:
            print("  " + v.describe())


def _run_one(name: str, spec: LoadSpec, out: Path, args: argparse.Namespace) -> LoadResult:
    # Locust runs tied to this process (PDEATHSIG): a kill -9 of `lamplighter load`, which no
    # handler can catch, takes it along instead of leaving it sending load.
    from fixtures.processes import tied_to_parent

    web_port = args.web_port if args.web else None
    with LoadProcess(spec, out, web_port=web_port, launcher=tied_to_parent) as proc:
        if web_port:
            print(
                f"{name}: Locust web UI at http://127.0.0.1:{web_port} (LLM tabs: latency, "
                "throughput, pods)"
            )
        proc.wait(args.timeout)
        return proc.result()


def run(args: argparse.Namespace) -> int:
    try:
        specs, slo = build_specs(args)
    except (ConfigError, WorkloadError, SloError, ValueError) as exc:
        print(f"lamplighter load: error: {exc}", file=sys.stderr)
        return EXIT["config"]
    if args.print_spec:
        print(spec_to_json(next(iter(specs.values()))))
        return EXIT["passed"]
    out = args.out or Path("reports") / time.strftime("load-%Y%m%d-%H%M%S")
    results: dict[str, LoadResult] = {}
    for name, spec in specs.items():
        if results:  # a later run must not start on the earlier run's warm caches
            spec = _cold_start(spec, args.stack_file)
        results[name] = _run_one(name, spec, out / name if len(specs) > 1 else out, args)
    main_name = "scheduler" if "scheduler" in results else next(iter(results))
    main = results[main_name]
    report = evaluate(slo, main.samples, main.validity) if slo else None
    for name, result in results.items():
        print_table(name, result, report if name == main_name else None)
    failures = _failed_requests(main)
    outcome = report.outcome if report else _outcome_without_slo(main, failures)
    lines = [v.describe() for v in report.verdicts] if report else []
    if not report and failures:
        lines.append(failures)
    if not report and not any(not s.warmup for s in main.samples):
        lines.append(f"invalid: no request was measured (log: {main.log_path})")
        print(lines[-1])
    lines += [
        f"invalid: {r}" for r in (report.invalid_reasons if report else main.validity.reasons)
    ]
    html = render_summary(
        out, {n: r.samples for n, r in results.items()}, verdict_lines=lines, outcome=outcome
    )
    if report:
        (out / "verdict.json").write_text(json.dumps(report.to_dict(), indent=2))
    if not report and failures:
        print(failures)
    print(f"\noutcome: {outcome}   report: {html}")
    return EXIT[outcome]


def _cold_start(spec: LoadSpec, stack_file: Path | None) -> LoadSpec:
    """Reset every pod's prefix cache (pods from the stack file), or reseed the prompts."""
    import httpx

    pods = json.loads(stack_file.read_text()).get("pods", []) if stack_file else []
    urls = [str(p["url"]) for p in pods if isinstance(p, dict) and p.get("url")]
    try:
        with httpx.Client(timeout=10) as http:
            reset = bool(urls) and reset_prefix_caches(urls, http)
        why = ("" if reset else "the pods do not offer POST /reset_prefix_cache" if urls
               else "the stack file names no pods")
    except httpx.HTTPError as exc:
        reset, why = False, f"resetting the pods' prefix caches failed: {exc}"
    if reset:
        print(f"prefix caches reset on {len(urls)} pods before the next run")
        return spec
    seed = spec.workload.seed + 1
    print(f"{why}: the next run's prompts are reseeded (seed {seed}; arrivals keep seed "
          f"{spec.arrivals_seed}) so it starts cold")
    return replace(spec, workload=replace(spec.workload, seed=seed),
                   arrival_seed=spec.arrivals_seed)


def _failed_requests(result: LoadResult) -> str:
    """``"FAIL 3 of 24 requests failed (first: ...)"``, or "" when every one succeeded."""
    measured = [s for s in result.samples if not s.warmup]
    failed = [s for s in measured if not s.ok]
    if not failed:
        return ""
    first = failed[0]
    return (f"FAIL {len(failed)} of {len(measured)} requests failed (first: status "
            f"{first.status}, {first.error or 'no error text'})")


def _outcome_without_slo(result: LoadResult, failures: str) -> str:
    """No SLO file: any failed request fails the run; an unhealthy run, or one that measured
    no request at all, is invalid (no evidence)."""
    if failures:
        return "failed"
    measured = any(not s.warmup for s in result.samples)
    return "passed" if result.validity.valid and measured else "invalid"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lamplighter")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
