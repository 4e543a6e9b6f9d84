"""Report plots (PNG, matplotlib Agg) and the ``summary.html`` that shows them.

For one run or several (typically ``scheduler`` vs ``baseline`` on the same seed): TTFT
CDF, requests per pod, prefix-cache hit rate over time, and TTFT against offered load
(from the pacer's stage rate when a ladder ran, else one point per run).
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from loadtests.samples import Sample
from loadtests.stats import metric_values, summarize

__all__ = [
    "plot_hit_rate",
    "plot_latency_vs_load",
    "plot_requests_per_pod",
    "plot_ttft_cdf",
    "render_summary",
]

Runs = Mapping[str, Sequence[Sample]]



def _legend(ax: Any, **kwargs: Any) -> None:
    """A legend only when something was drawn (a run without successes draws nothing)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)

def _measured(samples: Sequence[Sample]) -> list[Sample]:
    return [s for s in samples if not s.warmup]


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ttft_cdf(runs: Runs, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for name, samples in runs.items():
        values = np.sort(np.asarray(metric_values(_measured(samples), "ttft")) * 1000.0)
        if values.size:
            ax.step(
                values,
                np.arange(1, values.size + 1) / values.size,
                where="post",
                label=f"{name} (n={values.size}, p90={np.percentile(values, 90):.0f} ms)",
            )
    ax.set(xlabel="TTFT (ms)", ylabel="share of requests", title="Time to first token, CDF")
    ax.grid(alpha=0.3)
    _legend(ax, loc="lower right")
    return _save(fig, path)


def plot_requests_per_pod(runs: Runs, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4))
    per_run = {name: summarize(s)["per_pod"] for name, s in runs.items()}
    pods = sorted({p for counts in per_run.values() for p in counts})
    width = 0.8 / max(len(per_run), 1)
    x = np.arange(len(pods))
    for i, (name, counts) in enumerate(per_run.items()):
        ax.bar(x + i * width, [counts.get(p, 0) for p in pods], width, label=name)
    ax.set_xticks(x + width * (len(per_run) - 1) / 2, pods, rotation=30, ha="right")
    ax.set(ylabel="requests", title="Requests per pod")
    ax.legend()
    return _save(fig, path)


def plot_hit_rate(runs: Runs, path: Path, bins: int = 20) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for name, samples in runs.items():
        # only requests whose server reported cached tokens: unknown is not a miss
        ok = [s for s in samples if s.ok and s.prompt_tokens and s.cached_tokens is not None]
        if not ok:
            continue
        t0 = min(s.start for s in ok)
        edges = np.linspace(0, max(s.start - t0 for s in ok) + 1e-9, bins + 1)
        cached, prompt = np.zeros(bins), np.zeros(bins)
        for s in ok:
            i = min(int(np.searchsorted(edges, s.start - t0, side="right")) - 1, bins - 1)
            cached[i] += s.cached_tokens or 0
            prompt[i] += s.prompt_tokens or 0
        mids = (edges[:-1] + edges[1:]) / 2
        has = prompt > 0
        ax.plot(mids[has], cached[has] / prompt[has], marker="o", label=name)
    ax.set(
        xlabel="time since start (s)",
        ylabel="cached / prompt tokens",
        ylim=(0, 1.05),
        title="Prefix-cache hit rate over time",
    )
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(fig, path)


def plot_latency_vs_load(runs: Runs, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for name, samples in runs.items():
        groups: dict[float, list[Sample]] = defaultdict(list)
        measured = _measured(samples)
        if any(s.offered_rate for s in measured):
            for s in measured:
                if s.offered_rate:
                    groups[s.offered_rate].append(s)
        elif measured:
            groups[summarize(measured)["throughput"]["requests_per_s"]] = measured
        xs = sorted(groups)
        for p, style in ((50, "-o"), (90, "--s")):
            ys = [
                np.percentile(v, p) * 1000 if (v := metric_values(groups[x], "ttft")) else np.nan
                for x in xs
            ]
            ax.plot(xs, ys, style, label=f"{name} p{p}")
    ax.set(xlabel="offered load (requests/s)", ylabel="TTFT (ms)", title="TTFT vs offered load")
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(fig, path)


def _fmt(v: Any, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if v is None else f"{v * scale:.{digits}f}"


def _figures_table(runs: Runs) -> str:
    rows = []
    for name, samples in runs.items():
        s = summarize(samples)
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{s['count']}</td><td>{s['error_ratio']:.3f}</td>"
            + "".join(
                f"<td>{_fmt(s[m].get(p), 1000)}</td>"
                for m in ("ttft", "itl")
                for p in ("p50", "p90", "p99")
            )
            + f"<td>{s['throughput']['requests_per_s']:.2f}</td>"
            f"<td>{s['throughput']['output_tokens_per_s']:.0f}</td>"
            f"<td>{_fmt(s['hit_rate'], 1, 3)}</td></tr>"
        )
    head = (
        "<tr><th>run</th><th>requests</th><th>error ratio</th><th>TTFT p50 ms</th>"
        "<th>TTFT p90 ms</th><th>TTFT p99 ms</th><th>ITL p50 ms</th><th>ITL p90 ms</th>"
        "<th>ITL p99 ms</th><th>req/s</th><th>output tok/s</th><th>hit rate</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def render_summary(
    out_dir: Path,
    runs: Runs,
    title: str = "lamplighter load report",
    verdict_lines: Sequence[str] = (),
    outcome: str | None = None,
) -> Path:
    """Write the four PNGs and ``summary.html`` into ``out_dir``; returns the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = [
        plot_ttft_cdf(runs, out_dir / "ttft_cdf.png"),
        plot_requests_per_pod(runs, out_dir / "requests_per_pod.png"),
        plot_hit_rate(runs, out_dir / "hit_rate_over_time.png"),
        plot_latency_vs_load(runs, out_dir / "latency_vs_load.png"),
    ]
    verdicts = "".join(f"<li>{html.escape(line)}</li>" for line in verdict_lines)
    outcome_html = f"<h2>Outcome: {html.escape(outcome)}</h2>" if outcome else ""
    images = "".join(f'<figure><img src="{p.name}" alt="{p.stem}"></figure>' for p in pngs)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}figure{{display:inline-block}}
img{{max-width:640px}}</style></head><body><h1>{html.escape(title)}</h1>{outcome_html}
<ul>{verdicts}</ul>{_figures_table(runs)}{images}</body></html>"""
    path = out_dir / "summary.html"
    path.write_text(page)
    return path
