"""Load generation, latency metrics and SLO verdicts for llm-d inference-scheduling stacks.

Two halves, kept apart because importing ``locust`` monkey-patches the process with gevent
(streaming gRPC and asyncio then hang):

- pure modules, safe anywhere (pytest suites included): ``workloads``, ``samples``,
  ``timings``, ``stats``,
  ``slo``, ``arrivals``, ``runconfig``, ``validity``, ``plots``, ``api``, ``cli``;
- Locust-side modules, imported only inside the Locust process that ``api.run_load`` spawns:
  ``client``, ``pacing``, ``users``, ``shapes``, ``dashboard``, ``locustfile``.

This ``__init__`` imports nothing so that ``import loadtests.x`` stays cheap and gevent-free.
"""
