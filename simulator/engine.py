"""The engine model: vLLM's step loop as a synchronous state machine with injected time.

Each call to ``step(now)`` completes the step in flight (its tokens become visible at ``now``)
and plans the next one, returning the emitted requests and when that next step ends:

1. Running requests first, in admission order: each gets its remaining prefill chunk or one
   decode token, within the per-step token budget (chunked prefill). When the KV pool cannot
   grow a request, the most recently admitted running request is preempted (its blocks are
   freed, it goes back to the head of the queue and is recomputed later), as vLLM does.
2. Then, if nothing was preempted, waiting requests FCFS while ``max_num_seqs``, the budget,
   the KV pool and ``max_loras`` allow. A new request's cached prefix is the longest run of
   its leading full blocks in the cache, capped so at least one prompt token is computed
   (vLLM recomputes the last token to get logits): those tokens are not prefilled.
3. Step time = base + a * prefill tokens + b * decode sequences (``EngineConfig``).

A request whose tokens are all computed at the end of a step emits one token: the first one
ends its prefill (TTFT = queue + prefill of uncached tokens), then one per decode step.
``step`` is ``finish_step`` (the prefill half of the ending step, hence the first tokens)
then ``plan_step`` (its decode half, then the next plan), so the driver can send first tokens
before walking a large decode batch; both halves use the same ``now``.
No ``time`` or asyncio here: ``driver`` runs this on a real clock, tests on a fake one.
"""

from __future__ import annotations

import enum
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from simulator.config import EngineConfig
from simulator.kv_cache import Block, KVCache, hash_blocks, prefix_seed
from simulator.stats import EngineStats

__all__ = ["Engine", "EngineRequest", "RequestStatus", "StepOutcome"]


class RequestStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    ABORTED = "aborted"


class EngineRequest:
    """One sequence: its prompt, its planned output and where the engine has got to.

    The output is planned up front (``generation`` decides the tokens and whether the last
    one is an EOS); the engine decides only *when* each token appears.
    """

    __slots__ = (
        "arrival_time", "block_hashes", "blocks", "finish_reason", "finished_time",
        "first_scheduled_time", "first_token_time", "hash_seed", "last_token_time", "lora",
        "num_cached_blocks", "num_cached_tokens", "num_computed", "num_output",
        "num_preemptions", "output_texts", "output_token_ids", "prompt_len", "request_id",
        "status", "token_ids",
    )

    def __init__(
        self,
        request_id: str,
        prompt_token_ids: Sequence[int],
        output_token_ids: Sequence[int],
        output_texts: Sequence[str] = (),
        finish_reason: str = "length",
        lora: str | None = None,
    ) -> None:
        if not prompt_token_ids or not output_token_ids:
            raise ValueError("a request needs at least one prompt and one output token")
        self.request_id = request_id
        self.prompt_len = len(prompt_token_ids)
        # Tuples of ints / strs: the cyclic GC untracks them after one pass, so long prompts
        # of many running requests do not lengthen every collection (a loop stall).
        self.token_ids = (*prompt_token_ids, *output_token_ids)
        self.output_token_ids = tuple(output_token_ids)
        self.output_texts = tuple(output_texts)
        self.finish_reason = finish_reason
        self.lora = lora
        self.status = RequestStatus.WAITING
        self.num_output = 0
        self.num_computed = 0
        self.blocks: list[Block] = []
        self.block_hashes: list[int] = []
        self.hash_seed = 0
        self.num_cached_blocks = 0
        self.num_cached_tokens: int | None = None
        self.num_preemptions = 0
        self.arrival_time = 0.0
        self.first_scheduled_time: float | None = None
        self.first_token_time: float | None = None
        self.last_token_time: float | None = None
        self.finished_time: float | None = None

    @property
    def num_tokens(self) -> int:
        """Tokens of the sequence so far (prompt + emitted output)."""
        return self.prompt_len + self.num_output

    @property
    def max_output(self) -> int:
        return len(self.output_token_ids)

    @property
    def finished(self) -> bool:
        return self.status is RequestStatus.FINISHED or self.status is RequestStatus.ABORTED


@dataclass
class StepOutcome:
    """What one ``step(now)`` call produced."""

    emitted: list[EngineRequest] = field(default_factory=list)  # first tokens listed first
    num_first: int = 0  # how many of ``emitted`` are first tokens
    finished: list[EngineRequest] = field(default_factory=list)
    next_time: float | None = None  # end of the step now in flight; None = idle
    prefill_tokens: int = 0  # work of the step now in flight
    decode_seqs: int = 0


class Engine:
    """Continuous batching over a ``KVCache``; see the module docstring for the rules."""

    def __init__(self, config: EngineConfig, stats: EngineStats | None = None) -> None:
        self.config = config
        self.kv = KVCache(config.num_gpu_blocks, config.block_size)
        self.stats = stats or EngineStats(config.max_model_len)
        self.waiting: deque[EngineRequest] = deque()
        self.running: list[EngineRequest] = []
        self.requests: dict[str, EngineRequest] = {}
        # The step in flight: (request, tokens computed), prefill entries and decode entries.
        self._prefills: list[tuple[EngineRequest, int]] = []
        self._decodes: list[tuple[EngineRequest, int]] = []
        self._step_end: float | None = None
        self._seeds: dict[str | None, int] = {}
        self._preempted_this_step = False

    # -- intake --------------------------------------------------------------------------------
    def add_request(self, req: EngineRequest, now: float) -> None:
        """Queue a request that arrived at ``now``; it joins the batch at the next step."""
        total = req.prompt_len + req.max_output
        if self.kv.blocks_needed(total) > self.kv.num_blocks:
            raise ValueError(
                f"request needs {total} tokens of KV cache but the pool holds "
                f"{self.kv.num_blocks * self.kv.block_size}"
            )
        if req.request_id in self.requests:
            raise ValueError(f"duplicate request id {req.request_id}")
        seed = self._seeds.get(req.lora)
        if seed is None:
            seed = self._seeds[req.lora] = prefix_seed(self.config.model, req.lora)
        req.hash_seed = seed
        req.arrival_time = now
        req.status = RequestStatus.WAITING
        hash_blocks(req.token_ids, self.kv.block_size, seed, req.block_hashes,
                    req.prompt_len // self.kv.block_size)
        self.requests[req.request_id] = req
        self.waiting.append(req)

    def abort(self, request_id: str) -> None:
        """Drop a request (client went away); its blocks are freed but stay cached."""
        req = self.requests.pop(request_id, None)
        if req is None or req.finished:
            return
        if req.status is RequestStatus.WAITING:
            self.waiting.remove(req)
        else:
            self.running.remove(req)
        self.kv.free(req.blocks)
        req.status = RequestStatus.ABORTED

    # -- queries -------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a step is in flight or work is queued."""
        return self._step_end is not None or bool(self.waiting or self.running)

    @property
    def step_end(self) -> float | None:
        """Modelled end of the step in flight."""
        return self._step_end

    def running_loras(self) -> list[str]:
        return sorted({r.lora for r in self.running if r.lora})

    def waiting_loras(self) -> list[str]:
        return sorted({r.lora for r in self.waiting if r.lora})

    # -- the loop ------------------------------------------------------------------------------
    def step(self, now: float) -> StepOutcome:
        """Finish the step in flight at ``now`` and start the next one if there is work."""
        outcome = self.finish_step(now)
        self.plan_step(now, outcome)
        return outcome

    def finish_step(self, now: float) -> StepOutcome:
        """The first half of ``step``: the step in flight ends at ``now``. Only its prefill
        work is completed here, so the first tokens (``outcome.emitted[:num_first]``) are out
        before the batch's decodes are walked; ``plan_step`` completes the rest."""
        outcome = StepOutcome()
        if self._step_end is not None:
            overrun = now - self._step_end
            self.stats.step_overrun.observe(overrun)
            self.stats.recent_overruns.append(overrun)
            self._finish_entries(now, outcome, self._prefills)
            self._prefills = []
            self._step_end = None
        return outcome

    def plan_step(self, now: float, outcome: StepOutcome) -> None:
        """The second half of ``step``: complete the decodes of the step that ended at ``now``
        (appended to ``outcome``), then plan the next step if there is work. Call it right
        after ``finish_step`` with the same ``now``."""
        if self._step_end is not None:
            return  # a step is in flight (``finish_step`` was not called)
        if self._decodes:
            self._finish_entries(now, outcome, self._decodes)
            self._decodes = []
        if self.waiting or self.running:
            self._plan(now, outcome)

    def _finish_entries(
        self, now: float, outcome: StepOutcome, entries: list[tuple[EngineRequest, int]]
    ) -> None:
        """Complete ``entries`` (request, tokens computed) of the step that ended at ``now``."""
        stats = self.stats
        firsts: list[EngineRequest] = []
        rest: list[EngineRequest] = []
        gaps: Counter[float] = Counter()
        any_finished = False
        running = RequestStatus.RUNNING
        for req, n in entries:
            if req.status is not running:
                continue  # aborted while the step ran
            computed = req.num_computed = req.num_computed + n
            num_output = req.num_output
            if computed < req.prompt_len + num_output:
                continue  # a prefill chunk that is not the last one
            req.num_output = num_output = num_output + 1
            if req.first_token_time is None:
                req.first_token_time = now
                firsts.append(req)
                ttft = now - req.arrival_time
                stats.ttft.observe(ttft)
                stats.recent_ttft.append((req.request_id, ttft))
                stats.prompt_tokens += req.prompt_len
            else:
                gaps[now - req.last_token_time] += 1  # type: ignore[operator]
                rest.append(req)
            req.last_token_time = now
            if num_output >= len(req.output_token_ids):
                self._finish(req, now)
                outcome.finished.append(req)
                any_finished = True
        for gap, count in gaps.items():
            stats.itl.observe(gap, count)
        stats.generation_tokens += len(firsts) + len(rest)
        if firsts:  # first tokens stay ahead of all others in ``emitted``
            outcome.emitted[outcome.num_first : outcome.num_first] = firsts
            outcome.num_first += len(firsts)
        outcome.emitted += rest
        if any_finished:
            self.running = [r for r in self.running if r.status is RequestStatus.RUNNING]

    def _finish(self, req: EngineRequest, now: float) -> None:
        req.status = RequestStatus.FINISHED
        req.finished_time = now
        self.kv.free(req.blocks)
        self.requests.pop(req.request_id, None)
        s = self.stats
        first_token = req.first_token_time if req.first_token_time is not None else now
        scheduled = req.first_scheduled_time if req.first_scheduled_time is not None else now
        s.success[req.finish_reason] += 1
        s.e2e.observe(now - req.arrival_time)
        s.queue.observe(scheduled - req.arrival_time)
        s.prefill.observe(first_token - scheduled)
        s.decode.observe(now - first_token)
        s.inference.observe(now - scheduled)
        s.prompt_hist.observe(req.prompt_len)
        s.generation_hist.observe(req.num_output)

    def _plan(self, now: float, outcome: StepOutcome) -> None:
        cfg = self.config
        bs = self.kv.block_size
        budget = cfg.max_num_batched_tokens
        batch: list[tuple[EngineRequest, int]] = []
        self._preempted_this_step = False
        running = self.running
        i = 0
        while i < len(running) and budget > 0:
            req = running[i]
            computed = req.num_computed
            n = req.prompt_len + req.num_output - computed
            if n > budget:
                n = budget
            target = computed + n
            # Fast path (most decode steps): the blocks held already fit ``target``.
            if target > len(req.blocks) * bs and not self._grow_or_preempt(req, target):
                continue  # ``req`` itself was preempted (it left ``running``)
            if target // bs > req.num_cached_blocks:
                self._register_blocks(req, target)
            batch.append((req, n))
            budget -= n
            i += 1
        if not self._preempted_this_step:  # vLLM admits nothing in a step that preempted
            budget = self._admit(now, budget, batch)
        prefills = self._prefills = []
        decodes = self._decodes = []
        prefill = 0
        for entry in batch:
            if entry[1] == 1 and entry[0].num_output > 0:
                decodes.append(entry)
            else:
                prefills.append(entry)
                prefill += entry[1]
        decode = len(decodes)
        self._step_end = now + cfg.step_seconds(prefill, decode)
        self.stats.steps += 1
        outcome.next_time = self._step_end
        outcome.prefill_tokens = prefill
        outcome.decode_seqs = decode

    def _grow_or_preempt(self, req: EngineRequest, num_tokens: int) -> bool:
        """Give ``req`` blocks for ``num_tokens``, preempting from the tail; False if ``req``
        itself had to be preempted."""
        while not self.kv.allocate(req.blocks, (), num_tokens):
            victim = self.running.pop()
            self._preempt(victim)
            if victim is req:
                return False
        return True

    def _preempt(self, req: EngineRequest) -> None:
        self.kv.free(req.blocks)
        req.num_computed = 0
        req.num_cached_blocks = 0
        req.num_preemptions += 1
        req.status = RequestStatus.WAITING
        self.waiting.appendleft(req)
        self.stats.preemptions += 1
        self._preempted_this_step = True

    def _admit(self, now: float, budget: int, batch: list[tuple[EngineRequest, int]]) -> int:
        cfg = self.config
        bs = self.kv.block_size
        loras = {r.lora for r in self.running if r.lora}
        skipped: list[EngineRequest] = []
        while self.waiting and budget > 0 and len(self.running) < cfg.max_num_seqs:
            req = self.waiting[0]
            if req.lora and req.lora not in loras and len(loras) >= cfg.max_loras:
                skipped.append(self.waiting.popleft())  # vLLM skips it, keeps its place
                continue
            num_tokens = req.num_tokens
            # At least one token is recomputed, so a fully cached prompt still prefills one.
            max_hit = (num_tokens - 1) // bs
            hash_blocks(req.token_ids, bs, req.hash_seed, req.block_hashes, max_hit)
            hits = self.kv.find_prefix(req.block_hashes, max_hit)
            cached = len(hits) * bs
            n = min(num_tokens - cached, budget)
            if not self.kv.allocate(req.blocks, hits, cached + n):
                break
            self.waiting.popleft()
            req.num_computed = cached
            req.num_cached_blocks = len(hits)
            if req.num_cached_tokens is None:  # first admission; recomputes are not counted
                req.num_cached_tokens = cached
                req.first_scheduled_time = now
                self.stats.prefix_queries += num_tokens
                self.stats.prefix_hits += cached
            req.status = RequestStatus.RUNNING
            self.running.append(req)
            if req.lora:
                loras.add(req.lora)
            self._register_blocks(req, cached + n)
            batch.append((req, n))
            budget -= n
        self.waiting.extendleft(reversed(skipped))
        return budget

    def _register_blocks(self, req: EngineRequest, num_tokens: int) -> None:
        """Cache the full blocks this step will have computed (vLLM caches at schedule time)."""
        full = num_tokens // self.kv.block_size
        if full > req.num_cached_blocks:
            hash_blocks(req.token_ids, self.kv.block_size, req.hash_seed, req.block_hashes, full)
            self.kv.cache_blocks(req.blocks, req.block_hashes, req.num_cached_blocks, full)
            req.num_cached_blocks = full
