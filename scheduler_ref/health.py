"""gRPC health for the EPP's probe service names; SERVING once endpoints are known.

``liveness`` serves from the start (the process is up); the readiness names follow the
datastore (the chart's probes ask for ``inference-extension``).
"""

from __future__ import annotations

from grpc_health.v1 import health, health_pb2

__all__ = ["READINESS_SERVICES", "Health"]

READINESS_SERVICES = (
    "",
    "readiness",
    "inference-extension",
    "envoy.service.ext_proc.v3.ExternalProcessor",
)


class Health:
    """Wraps the aio HealthServicer with a latched ready flag."""

    def __init__(self) -> None:
        self.servicer = health.aio.HealthServicer()
        self.ready = False

    async def start(self) -> None:
        await self.servicer.set("liveness", health_pb2.HealthCheckResponse.SERVING)
        for name in READINESS_SERVICES:
            await self.servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    async def set_ready(self, ready: bool) -> None:
        if ready == self.ready:
            return
        self.ready = ready
        status = (health_pb2.HealthCheckResponse.SERVING if ready
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in READINESS_SERVICES:
            await self.servicer.set(name, status)
