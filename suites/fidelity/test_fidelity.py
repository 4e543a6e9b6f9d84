"""Fidelity: scheduler_ref against the upstream EPP, same config, same pods, same workload.

scheduler_ref claims to be a drop-in for the EPP. Here both run side by side on a local
stack of this module's own (the upstream EPP is GAIE's ``cmd/epp`` v1.5.0 built from Go
modules, watching an InferencePool in a local kube-apiserver; both read scheduler_ref's
default config: queue 2, kv-cache-utilization 2, prefix-cache 3), each behind its own Envoy
listener over the SAME pods, and the routing suite's seeded shared-prefix workload goes
through each from cold pod caches. Locality and balance are asserted within stated
tolerances; TTFT is reported beside them (see ``test_ttft_side_by_side``).

Decision agreement comes first, while the pods are quiescent: a seeded sequence of requests
goes one at a time to the upstream EPP over ext_proc (nothing reaches the pods, so their
metrics stay fixed), and ``scheduler_ref.replay`` decides the same sequence on the pods'
scraped metrics, following the EPP's picks (tie rule and why in ``scheduler_ref/replay.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures.comparison import RoutedRun, compare_gateways
from fixtures.localstack import LocalStack, LocalStackConfig
from fixtures.options import HarnessOptions
from fixtures.outcomes import Invalid
from fixtures.plans import load_plan, sized_shared_prefix
from fixtures.plugin import Evidence, Figure
from fixtures.stack import Stack
from fixtures.support import not_supported
from fixtures.tools import is_cached
from fixtures.upstream_epp import ext_proc_pick
from loadtests.client import build_body
from loadtests.locality import balance, stickiness
from loadtests.stats import metric_values, percentiles
from loadtests.workloads import generate
from scheduler_ref.config import DEFAULT_CONFIG
from scheduler_ref.replay import ReplayRequest, agreement, endpoints_from_metrics, replay

pytestmark = [pytest.mark.load, pytest.mark.long]  # make test runs it, conformance not

SEED = 20251126  # the routing suite's seed: the same prompts, groups and arrivals
HIT_RATE_TOLERANCE = 0.05  # absolute, token-weighted hit rate from pod counters
TOP_POD_SHARE_TOLERANCE = 0.05  # absolute, mean over prefix groups
MAX_POD_SHARE_TOLERANCE = 0.10  # absolute
TTFT_P90_GOAL = 0.15  # relative; reported, not asserted (see test_ttft_side_by_side)
REF, UPSTREAM = "ref", "llm-d"
REPLAY_SEED = SEED + 1  # prompts the load runs never send: no prefix of theirs can match
REPLAY_REQUESTS = 240
REPLAY_GAP_SECONDS = 0.02  # the EPP adds a pick's prefix blocks to its index asynchronously
AGREEMENT_GOAL = 0.90
MIN_COMPARED = 100  # fewer untied decisions than this is no evidence either way


@pytest.fixture(scope="module")
def fidelity_stack(harness_options: HarnessOptions, run_dir: Path) -> Iterator[Stack]:
    """Its own local stack with both schedulers (the session's stack runs one, so the other
    suites carry no second EPP and control plane beside them)."""
    if harness_options.target != "local":
        not_supported("both schedulers run as local processes: use --target local")
    if not all(is_cached(binary) for binary in ("epp", "etcd", "kube-apiserver")):
        not_supported("the upstream EPP and its control plane are not built: `make epp` "
                      "(.ci/run builds them)")
    config = LocalStackConfig(log_dir=run_dir / "fidelity" / "logs", pods=harness_options.pods,
                              epp_config_file=harness_options.epp_config, fidelity=True)
    with LocalStack(config) as stack:
        yield stack


def test_decisions_agree_on_a_sequential_replay(
        fidelity_stack: Stack, http: httpx.Client, harness_options: HarnessOptions,
        evidence: Evidence) -> None:
    """Runs before the load runs (module order), on pods nothing has been sent to."""
    stack = fidelity_stack
    upstream = stack.extras["fidelity_epps"][UPSTREAM]
    ca = Path(upstream["trusted_ca"]) if upstream.get("trusted_ca") else None
    plan = load_plan(harness_options.target, "routing")
    specs = generate(sized_shared_prefix(plan, stack, http, REPLAY_SEED))[:REPLAY_REQUESTS]
    bodies = [build_body(r, stack.model, stream=True, ignore_eos=True) for r in specs]
    requests = [ReplayRequest(body) for body in bodies]
    endpoints = endpoints_from_metrics({p.address: http.get(p.metrics_url).text
                                        for p in stack.pods},
                                       {p.address: p.name for p in stack.pods})
    theirs: list[str | None] = []
    for body, r in zip(bodies, requests, strict=True):
        try:
            theirs.append(ext_proc_pick(upstream["address"], ca, body, r.route()))
        except RuntimeError:  # an immediate response: the EPP refused the request
            theirs.append(None)
        time.sleep(REPLAY_GAP_SECONDS)
    config = stack.scheduler_config or DEFAULT_CONFIG
    found = agreement(replay(requests, endpoints, config, follow=theirs), theirs)
    # Negative control on the same decisions: a reference whose state puts every prefix on
    # the next pod over must disagree, or the measure could not tell schedulers apart.
    keys = sorted(e.key for e in endpoints)
    shifted = [keys[(keys.index(t) + 1) % len(keys)] if t in keys else None for t in theirs]
    control = agreement(replay(requests, endpoints, config, follow=shifted), theirs)
    rule = ("ties (scheduler_ref's top total shared by several pods) excluded: "
            f"{found.tied} of {found.requests}; refused {found.refused}")
    evidence.figure(Figure("fidelity_decision_agreement", found.share or 0.0, "ratio",
                           baseline=control.share, samples=found.compared,
                           threshold=f">= {AGREEMENT_GOAL} of untied decisions",
                           note=f"{rule}; baseline = negative control (prefixes recorded on "
                                f"the next pod); first disagreements {found.disagreements[:3]}"))
    if found.compared < MIN_COMPARED:
        raise Invalid(f"only {found.compared} untied decisions of {found.requests} ({rule}): "
                      f"fewer than {MIN_COMPARED}, no evidence either way")
    assert control.share is not None and control.share < AGREEMENT_GOAL, (
        f"negative control agreed on {control.share}: the replay cannot tell schedulers apart")
    assert found.share is not None and found.share >= AGREEMENT_GOAL, (
        f"scheduler_ref picked the upstream EPP's pod in {found.agreed} of {found.compared} "
        f"untied decisions ({found.share:.3f} < {AGREEMENT_GOAL}); first disagreements "
        f"(index, scheduler_ref, EPP): {found.disagreements[:5]}")


@pytest.fixture(scope="module")
def runs(fidelity_stack: Stack, http: httpx.Client, harness_options: HarnessOptions,
         run_dir: Path) -> dict[str, RoutedRun]:
    """One run through each scheduler; either run unhealthy makes every test *invalid*."""
    stack = fidelity_stack
    gateways = stack.extras["fidelity_gateways"]
    plan = load_plan(harness_options.target, "routing")
    workload = sized_shared_prefix(plan, stack, http, SEED)
    return compare_gateways(stack, http, workload, plan, run_dir / "load" / "fidelity",
                            {REF: gateways[REF], UPSTREAM: gateways[UPSTREAM]})


def _who(stack: Stack) -> str:
    epps = stack.extras.get("fidelity_epps", {})
    return ", ".join(f"{k}={v.get('implementation')} {v.get('version')}"
                     for k, v in epps.items())


def test_both_schedulers_reach_the_same_prefix_cache_hit_rate(
        runs: dict[str, RoutedRun], evidence: Evidence, fidelity_stack: Stack) -> None:
    ref, upstream = runs[REF].pod_hit_rate, runs[UPSTREAM].pod_hit_rate
    n = len(runs[REF].result.samples)
    evidence.figure(Figure("fidelity_prefix_cache_hit_rate", ref, "ratio", baseline=upstream,
                           threshold=f"within {HIT_RATE_TOLERANCE} of the upstream EPP",
                           samples=n,
                           note=f"scheduler_ref vs upstream EPP; {_who(fidelity_stack)}"))
    assert abs(ref - upstream) <= HIT_RATE_TOLERANCE, (
        f"scheduler_ref hit rate {ref:.3f} vs upstream EPP {upstream:.3f} (n={n} each): "
        f"more than {HIT_RATE_TOLERANCE} apart")


def test_both_schedulers_keep_prefix_groups_together_alike(
        runs: dict[str, RoutedRun], evidence: Evidence) -> None:
    ref, upstream = (stickiness(runs[label].result.samples) for label in (REF, UPSTREAM))
    assert ref and upstream, "no request named its pod"
    evidence.figure(Figure("fidelity_top_pod_share_per_group", ref.top_pod_share, "ratio",
                           baseline=upstream.top_pod_share, samples=ref.groups,
                           threshold=f"within {TOP_POD_SHARE_TOLERANCE} of the upstream EPP"))
    assert abs(ref.top_pod_share - upstream.top_pod_share) <= TOP_POD_SHARE_TOLERANCE, (
        f"top-pod share per group: scheduler_ref {ref.top_pod_share:.3f} vs upstream "
        f"{upstream.top_pod_share:.3f} over {ref.groups} groups")


def test_both_schedulers_balance_the_pods_alike(runs: dict[str, RoutedRun], evidence: Evidence,
                                                fidelity_stack: Stack) -> None:
    names = [p.name for p in fidelity_stack.pods]
    ref, upstream = (balance(runs[label].result.samples, names) for label in (REF, UPSTREAM))
    assert ref and upstream, "no request named its pod"
    evidence.figure(Figure("fidelity_max_pod_share", ref.max_share, "ratio",
                           baseline=upstream.max_share,
                           threshold=f"within {MAX_POD_SHARE_TOLERANCE} of the upstream EPP",
                           note=f"ref {ref.per_pod}; upstream {upstream.per_pod}"))
    assert abs(ref.max_share - upstream.max_share) <= MAX_POD_SHARE_TOLERANCE, (
        f"max pod share: scheduler_ref {ref.max_share:.3f} {ref.per_pod} vs upstream "
        f"{upstream.max_share:.3f} {upstream.per_pod}")


def test_ttft_side_by_side(runs: dict[str, RoutedRun], evidence: Evidence) -> None:
    """TTFT p50/p90 of both, with the issue's goal (p90 within 15 %) stated. Not asserted:
    on 2 shared cores the run-to-run spread of one run's p90 is of that size, so a verdict
    would flip with machine noise; the hit-rate and placement assertions above carry the
    comparison, and these figures show whether the two also agree in latency."""
    ttft = {label: metric_values(run.result.samples, "ttft") for label, run in runs.items()}
    for pct in (50, 90):
        ref = percentiles(ttft[REF], (pct,))[f"p{pct}"]
        upstream = percentiles(ttft[UPSTREAM], (pct,))[f"p{pct}"]
        evidence.figure(Figure(f"fidelity_ttft_p{pct}_seconds", ref, "s", baseline=upstream,
                               samples=len(ttft[REF]),
                               threshold=(f"goal: within {TTFT_P90_GOAL:.0%} (reported)"
                                          if pct == 90 else None),
                               note=f"ratio ref/upstream {ref / upstream:.2f}"))
    assert ttft[REF] and ttft[UPSTREAM], "a run produced no TTFT samples"
