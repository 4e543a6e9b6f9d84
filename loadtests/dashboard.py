"""LLM tables in Locust's web UI, beside its own request table.  (Locust side.)

Uses the web UI's extension points: ``extended_tabs`` / ``extended_tables`` /
``extended_csv_files`` template args, and an ``extended_stats`` list added to every
``/stats/requests`` poll (the UI refreshes it every 2 s). Figures come from the raw samples
the master holds (warm-up included while live), so the numbers match the final report.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Response, request
from locust.env import Environment

from loadtests.pacing import Coordinator
from loadtests.stats import METRICS, summarize, summary_csv

__all__ = ["install_dashboard", "llm_tables"]

TABS = [
    {"title": "LLM latency", "key": "llm-latency"},
    {"title": "LLM throughput", "key": "llm-throughput"},
    {"title": "LLM pods", "key": "llm-pods"},
]
TABLES = [
    {
        "key": "llm-latency",
        "structure": [
            {"key": "name", "title": "Metric"},
            {"key": "count", "title": "Samples"},
            {"key": "p50", "title": "p50 (ms)"},
            {"key": "p90", "title": "p90 (ms)"},
            {"key": "p95", "title": "p95 (ms)"},
            {"key": "p99", "title": "p99 (ms)"},
            {"key": "mean", "title": "Mean (ms)"},
        ],
    },
    {
        "key": "llm-throughput",
        "structure": [{"key": "name", "title": "Figure"}, {"key": "value", "title": "Value"}],
    },
    {
        "key": "llm-pods",
        "structure": [
            {"key": "name", "title": "Pod"},
            {"key": "requests", "title": "Requests"},
            {"key": "share", "title": "Share"},
        ],
    },
]
CACHE_S = 1.0


def _ms(value: Any) -> Any:
    return round(value * 1000.0, 2) if isinstance(value, float) else "-"


def llm_tables(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the three LLM tables, keyed like ``TABLES``."""
    latency = [
        {
            "name": m.upper(),
            "count": summary[m]["count"],
            **{k: _ms(summary[m].get(k)) for k in ("p50", "p90", "p95", "p99", "mean")},
        }
        for m in METRICS
    ]
    tp = summary["throughput"]
    hit = summary["hit_rate"]
    throughput = [
        {"name": "Requests (ok / all)", "value": f"{summary['ok']} / {summary['count']}"},
        {"name": "Error ratio", "value": f"{summary['error_ratio']:.3f}"},
        {"name": "Requests/s", "value": f"{tp['requests_per_s']:.2f}"},
        {"name": "Output tokens/s", "value": f"{tp['output_tokens_per_s']:.1f}"},
        {"name": "Total tokens/s", "value": f"{tp['total_tokens_per_s']:.1f}"},
        {
            "name": "Prefix-cache hit rate (cached/prompt tokens)",
            "value": "-" if hit is None else f"{hit:.3f}",
        },
        {
            "name": "Group stickiness (share on top pod)",
            "value": "-" if summary["stickiness"] is None else f"{summary['stickiness']:.3f}",
        },
    ]
    total = sum(summary["per_pod"].values()) or 1
    pods = [
        {"name": pod, "requests": n, "share": f"{n / total:.3f}"}
        for pod, n in summary["per_pod"].items()
    ]
    return [
        {"key": "llm-latency", "data": latency},
        {"key": "llm-throughput", "data": throughput},
        {"key": "llm-pods", "data": pods},
    ]


def install_dashboard(env: Environment, coordinator: Coordinator) -> None:
    """Add the LLM tabs, their data on every stats poll, and a CSV/JSON download."""
    web_ui = env.web_ui
    if web_ui is None or web_ui.app is None:
        return
    app = web_ui.app
    web_ui.template_args.update(
        {
            "extended_tabs": TABS,
            "extended_tables": TABLES,
            "extended_csv_files": [
                {"href": "/lamplighter/llm_stats.csv", "title": "Download LLM statistics CSV"}
            ],
        }
    )
    cache: dict[str, Any] = {"at": 0.0, "summary": None}

    def current() -> dict[str, Any]:
        if cache["summary"] is None or time.monotonic() - cache["at"] > CACHE_S:
            cache["summary"] = summarize(coordinator.samples, include_warmup=True)
            cache["at"] = time.monotonic()
        return dict(cache["summary"])

    @app.after_request
    def add_llm_stats(response: Response) -> Response:
        if request.path != "/stats/requests" or response.json is None:
            return response
        response.set_data(json.dumps({**response.json, "extended_stats": llm_tables(current())}))
        return response

    @app.route("/lamplighter/llm_stats.csv")
    def llm_stats_csv() -> Response:
        return Response(
            summary_csv(current()),
            mimetype="text/csv",
            headers={"Content-Disposition": "attachment;filename=llm_stats.csv"},
        )

    @app.route("/lamplighter/llm_stats.json")
    def llm_stats_json() -> Response:
        return Response(json.dumps(current()), mimetype="application/json")
