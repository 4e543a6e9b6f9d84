"""Model-server metrics scraping: one asyncio task per endpoint, every refresh interval.

Parsing uses prometheus-client's parser on the lines of the families we read (vLLM serves
hundreds of histogram lines we do not need). A failed scrape leaves the old sample, which then
goes stale and stops the endpoint from being picked.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from scheduler_ref.datastore import Datastore
from scheduler_ref.plugins.datalayer import BUILTIN_ENGINES, EngineMetrics
from scheduler_ref.types import Endpoint

__all__ = ["VLLM", "MetricNames", "MetricSpec", "ScrapeTarget", "Scraper", "parse_metrics"]

log = logging.getLogger("scheduler_ref.scrape")


_SPEC = re.compile(r'^\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(.*)\})?\s*$')
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"?([^",}]*?)"?\s*$')


@dataclass(frozen=True)
class MetricSpec:
    """``name{label=value,...}`` as in the EPP's metric flags: a family plus label filter."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> MetricSpec | None:
        """None for an empty spec; ValueError names a malformed one."""
        if not text.strip():
            return None
        m = _SPEC.match(text)
        if not m:
            raise ValueError(f"not a metric specification: {text!r}")
        labels = []
        for part in (m.group(2) or "").split(","):
            if not part.strip():
                continue
            lm = _MATCHER.match(part)
            if not lm:
                raise ValueError(f"bad label matcher {part.strip()!r} in {text!r} "
                                 "(want label=value)")
            labels.append((lm.group(1), lm.group(2)))
        return cls(m.group(1), tuple(labels))

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.labels)


@dataclass(frozen=True)
class MetricNames:
    """Parsed specs of one engine (see plugins/datalayer.EngineMetrics)."""

    waiting: MetricSpec | None
    running: MetricSpec | None
    kv_usage: MetricSpec | None
    lora_info: MetricSpec | None
    cache_info: MetricSpec | None
    kv_usage_fallback: MetricSpec | None = None
    block_size_label: str = "block_size"
    num_blocks_label: str = "num_gpu_blocks"
    block_size: MetricSpec | None = None
    num_blocks: MetricSpec | None = None

    @classmethod
    def from_engine(cls, e: EngineMetrics) -> MetricNames:
        p = MetricSpec.parse
        fallback = (MetricSpec("vllm:gpu_cache_usage_perc")
                    if e.kv_usage == "vllm:kv_cache_usage_perc" else None)
        return cls(p(e.queued), p(e.running), p(e.kv_usage), p(e.lora), p(e.cache_info),
                   fallback, e.block_size_label or "block_size",
                   e.num_blocks_label or "num_gpu_blocks", p(e.block_size_spec),
                   p(e.num_blocks_spec))

    def specs(self) -> list[MetricSpec]:
        return [s for s in (self.waiting, self.running, self.kv_usage, self.kv_usage_fallback,
                            self.lora_info, self.cache_info, self.block_size, self.num_blocks)
                if s is not None]

    def wanted(self) -> set[str]:
        return {s.name for s in self.specs()}


VLLM = MetricNames.from_engine(BUILTIN_ENGINES["vllm"])


def _select_lines(text: str, wanted: set[str]) -> str:
    # startswith() with a tuple is a C-level pre-filter: most of a vLLM page is histogram
    # lines of families we do not read (about twice as fast as splitting every line)
    prefixes = (*wanted, "#")
    keep = []
    for line in text.splitlines():
        if not line.startswith(prefixes):
            continue
        if line[0] == "#":
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[2] in wanted:
                keep.append(line)
        elif line.split("{", 1)[0].split(None, 1)[0] in wanted:
            keep.append(line)
    return "\n".join(keep) + "\n"


def _adapters(value: str) -> frozenset[str]:
    return frozenset(a for a in (s.strip() for s in value.split(",")) if a)


def _int_label(labels: dict[str, str], name: str) -> int:
    try:
        return int(float(labels.get(name, "0") or 0))
    except ValueError:
        return 0


def parse_metrics(text: str, names: MetricNames = VLLM) -> dict[str, Any]:
    """Endpoint metric fields from a Prometheus text page (missing families read as 0).

    Each spec's label filter selects series; when several match (one per engine of a
    data-parallel server), counts are summed and the KV-usage fraction is averaged.
    """
    samples: dict[str, list[tuple[float, dict[str, str]]]] = {}
    for family in text_string_to_metric_families(_select_lines(text, names.wanted())):
        for sample in family.samples:
            if sample.name == family.name or family.type in ("info", "unknown"):
                samples.setdefault(family.name, []).append((sample.value, dict(sample.labels)))

    def matching(spec: MetricSpec | None) -> list[tuple[float, dict[str, str]]]:
        if spec is None:
            return []
        return [s for s in samples.get(spec.name, []) if spec.matches(s[1])]

    kv = matching(names.kv_usage) or matching(names.kv_usage_fallback)
    fields: dict[str, Any] = {
        "waiting": sum(v for v, _ in matching(names.waiting)),
        "running": sum(v for v, _ in matching(names.running)),
        "kv_usage": sum(v for v, _ in kv) / len(kv) if kv else 0.0,
    }
    lora = matching(names.lora_info)
    if lora:
        labels = max(lora, key=lambda s: s[0])[1]  # the newest (value is a timestamp)
        fields["running_adapters"] = _adapters(labels.get("running_lora_adapters", ""))
        fields["waiting_adapters"] = _adapters(labels.get("waiting_lora_adapters", ""))
        fields["max_lora"] = _int_label(labels, "max_lora")
    cache = matching(names.cache_info)
    cache_labels = cache[0][1] if cache else {}
    fields["block_size"] = _int_label(cache_labels, names.block_size_label)
    fields["num_gpu_blocks"] = _int_label(cache_labels, names.num_blocks_label)
    for spec, field in ((names.block_size, "block_size"), (names.num_blocks, "num_gpu_blocks")):
        got = matching(spec)
        if got:
            fields[field] = int(got[0][0])
    return fields


@dataclass(frozen=True)
class ScrapeTarget:
    """How /metrics is fetched (the metrics-data-source's parameters)."""

    scheme: str = "http"
    path: str = "/metrics"
    insecure_skip_verify: bool = True


class Scraper:
    """Keeps one polling task per endpoint in the datastore; tasks follow membership."""

    def __init__(
        self,
        datastore: Datastore,
        clock: Callable[[], float],
        interval: float = 0.05,
        timeout: float = 1.0,
        names: Callable[[Endpoint], MetricNames] | None = None,
        target: ScrapeTarget | None = None,
    ) -> None:
        self.datastore = datastore
        self.clock = clock
        self.interval = interval
        self.timeout = timeout
        self.names_for = names or (lambda _e: VLLM)
        self.target = target or ScrapeTarget()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl()),
        )
        self.datastore.on_change(self._sync)
        self._sync(self.datastore.keys())

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.target.scheme != "https" or self.target.insecure_skip_verify:
            return False
        return ssl.create_default_context()

    def _sync(self, keys: set[str]) -> None:
        for key in [k for k in self._tasks if k not in keys]:
            self._tasks.pop(key).cancel()
        for key in keys - self._tasks.keys():
            self._tasks[key] = asyncio.get_running_loop().create_task(self._poll(key))

    async def scrape_once(self, key: str) -> bool:
        assert self._session is not None
        member = self.datastore.member(key)
        if member is None:
            return False
        url = f"{self.target.scheme}://{member.metrics_host or key}{self.target.path}"
        try:
            async with self._session.get(url) as resp:
                if resp.status != 200:
                    return False
                text = await resp.text()
            fields = parse_metrics(text, self.names_for(member))
        except (aiohttp.ClientError, TimeoutError, ValueError, UnicodeDecodeError) as e:
            log.debug("scrape of %s failed: %s", url, e)
            return False
        fields["metrics_time"] = self.clock()
        self.datastore.update_metrics(key, fields)
        return True

    async def _poll(self, key: str) -> None:
        failing = False
        while True:
            ok = await self.scrape_once(key)
            if ok == failing:
                log.info("metrics of %s %s", key, "recovered" if ok else "failing")
                failing = not ok
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
