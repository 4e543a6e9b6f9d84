"""Seed the emulated API with a rendered guide (``shared/fixtures/guide/<v>/<provider>``).

Adds what a healthy cluster would report: Deployment statuses, Ready pods with container
statuses and IPs, Gateway Programmed with an address, the HTTPRoute (fitted to the install
namespace, as the harness applies it) Accepted/ResolvedRefs, the InferencePool accepted, the
monitoring CRDs, the HF token secret. Defects are small functions that break one thing.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from pathlib import Path
from typing import Any, Self

import yaml

from fixtures.cluster.paths import guide_fixture_dir
from fixtures.cluster.profiles import GuideProfile, load_profile
from fixtures.cluster.providers import load_provider
from tests.support.deploy_suite import FAKE_HF_TOKEN

from .emulator import Emulator

__all__ = ["CURRENT_NS", "FAKE_HF_TOKEN", "CurrentGuideSeed", "GuideSeed", "seed_guide"]

Obj = dict[str, Any]
RENDERED_NS = "llm-d-inference-scheduler"
DEFAULT_POSTFIX = "inference-scheduling"
CURRENT_NS, CURRENT_POSTFIX = "llm-d-optimized-baseline", "optimized-baseline"


def _cond(type_: str, status: str = "True", reason: str = "", message: str = "") -> Obj:
    return {"type": type_, "status": status, "reason": reason or type_, "message": message,
            "lastTransitionTime": "2025-01-01T00:00:00Z"}


GATEWAY_STATUS: Obj = {"addresses": [{"type": "IPAddress", "value": "10.96.0.10"}],
                      "conditions": [_cond("Accepted"), _cond("Programmed")]}


def _docs(path: Path, namespace: str, postfix: str) -> list[Obj]:
    text = path.read_text().replace(RENDERED_NS, namespace)
    text = text.replace(f"-{DEFAULT_POSTFIX}", f"-{postfix}")
    return [d for d in yaml.safe_load_all(text) if d]


def _pods_for(dep: Obj, index_base: int) -> list[Obj]:
    template = dep["spec"]["template"]
    name = dep["metadata"]["name"]
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    pods = []
    for i in range(int(dep["spec"].get("replicas", 1))):
        spec = copy.deepcopy(template["spec"])
        running = {"running": {"startedAt": "2025-01-01T00:00:00Z"}}
        pods.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-{digest}-{i}", "namespace": dep["metadata"]["namespace"],
                         "labels": dict(template["metadata"].get("labels") or {})},
            "spec": spec,
            "status": {
                "phase": "Running", "podIP": f"10.0.{index_base}.{10 + i}",
                "conditions": [_cond("Ready"), _cond("ContainersReady")],
                "containerStatuses": [{"name": c["name"], "ready": True, "restartCount": 0,
                                       "started": True, "state": running}
                                      for c in spec.get("containers") or ()],
                "initContainerStatuses": [{"name": c["name"], "ready": True, "restartCount": 0,
                                           "started": True, "state": running}
                                          for c in spec.get("initContainers") or ()],
            },
        })
    return pods


class GuideSeed:
    """The objects of one healthy install, and defects to break it with."""

    def __init__(self, emulator: Emulator, version: str, provider: str, namespace: str,
                 postfix: str = DEFAULT_POSTFIX) -> None:
        self.emulator, self.namespace = emulator, namespace
        self.profile: GuideProfile = load_profile(version, provider, postfix)
        self.provider = load_provider(provider)
        self.source = guide_fixture_dir(version)

    def rendered(self) -> list[tuple[str, Path]]:
        """(release label, rendered file) of what the install creates."""
        return [(r, self.source / self.provider.name / f"{r}.yaml")
                for r in ("infra", "gaie", "ms")]

    def release_objects(self) -> list[Obj]:
        """What the install creates, with the statuses a healthy cluster reports."""
        objs: list[Obj] = []
        for release, path in self.rendered():
            for doc in _docs(path, self.namespace, self.profile.postfix):
                doc.setdefault("metadata", {}).setdefault("namespace", self.namespace)
                doc["metadata"].setdefault("labels", {})["lamplighter.test/release"] = release
                objs.append(doc)
        extra: list[Obj] = []
        for i, obj in enumerate(objs):
            kind = obj["kind"]
            if kind == "Deployment":
                replicas = int(obj["spec"].get("replicas", 1))
                obj["status"] = {"observedGeneration": 1, "replicas": replicas,
                                 "readyReplicas": replicas, "availableReplicas": replicas,
                                 "updatedReplicas": replicas,
                                 "conditions": [_cond("Available"), _cond("Progressing")]}
                extra += _pods_for(obj, i)
            elif kind == "Gateway":
                obj["status"] = copy.deepcopy(GATEWAY_STATUS)
                extra += self._gateway_proxy(obj)
            elif kind == "HTTPRoute":  # chart-made (current guide, gateway mode)
                obj["status"] = self.route_status()
            elif kind == "InferencePool" and self.provider.gateway_api:
                field = "parents" if obj["apiVersion"].endswith("/v1") else "parent"
                obj["status"] = {field: [{"parentRef": {"kind": "Gateway",
                                                        "name": self.profile.gateway_name},
                                          "conditions": [_cond("Accepted"),
                                                         _cond("ResolvedRefs")]}]}
                obj["metadata"]["creationTimestamp"] = "2025-01-01T00:00:00Z"
        for obj in extra:
            obj["metadata"].setdefault("labels", {})["lamplighter.test/release"] = "infra"
        return objs + extra

    def _gateway_proxy(self, gateway: Obj) -> list[Obj]:
        service = self.provider.service_for(gateway["metadata"]["name"])
        if not service:
            return []
        labels = {"gateway.networking.k8s.io/gateway-name": gateway["metadata"]["name"]}
        return [
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": service, "namespace": self.namespace, "labels": labels},
             "spec": {"type": "ClusterIP", "selector": labels,
                      "ports": [{"name": "http", "port": 80, "targetPort": 80}]}},
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": f"{service}-proxy-0", "namespace": self.namespace,
                          "labels": labels},
             "spec": {"containers": [{"name": "proxy", "ports": [{"containerPort": 80}]}]},
             "status": {"phase": "Running", "podIP": "10.0.99.1",
                        "conditions": [_cond("Ready")],
                        "containerStatuses": [{"name": "proxy", "ready": True,
                                               "restartCount": 0}]}},
        ]

    def route_status(self) -> Obj:
        return {"parents": [{
            "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                          "name": self.profile.gateway_name},
            "controllerName": f"{self.provider.name}.example/gateway-controller",
            "conditions": [_cond("Accepted"), _cond("ResolvedRefs")]}]}

    def route(self) -> Obj | None:
        """The provider's route file as the harness applies it, Accepted and resolved."""
        assert self.provider.route_file is not None
        route: Obj = yaml.safe_load((self.source / self.provider.route_file).read_text())
        route["metadata"].update(namespace=self.namespace, name=self.profile.route_name,
                                 creationTimestamp="2025-01-01T00:05:00Z")
        for parent in route["spec"]["parentRefs"]:
            parent["name"] = self.profile.gateway_name
        for rule in route["spec"]["rules"]:
            for backend in rule["backendRefs"]:
                backend["name"] = self.profile.pool_name
        route["status"] = self.route_status()
        return route

    def accept_routes(self, obj: Obj) -> None:
        """Emulator controller: the gateway accepts any HTTPRoute that has no status yet."""
        if obj.get("kind") == "HTTPRoute" and not obj.get("status"):
            obj["status"] = self.route_status()

    def prerequisites(self) -> list[Obj]:
        """Namespace, HF token secret, monitoring CRDs: present before any install."""
        token = base64.b64encode(FAKE_HF_TOKEN.encode()).decode()
        crds = [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                 "metadata": {"name": name}} for name in self.profile.monitoring_crds]
        return [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}},
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "llm-d-hf-token", "namespace": self.namespace},
             "data": {"HF_TOKEN": token}},
            *crds,
        ]

    def seed(self, *, installed: bool = True) -> Self:
        for obj in self.prerequisites():
            self.emulator.put(obj)
        if installed:
            route = self.route()
            for obj in (*self.release_objects(), *([route] if route else [])):
                self.emulator.put(obj)
            for pod in self.emulator.of_kind("Pod", self.namespace):
                for c in pod["spec"].get("containers") or ():
                    # a pod that prints its environment: the harness must mask the token
                    self.emulator.logs[(self.namespace, pod["metadata"]["name"], c["name"],
                                        False)] = f"starting\nHF_TOKEN={FAKE_HF_TOKEN}\nready\n"
        return self

    # -- defects -----------------------------------------------------------------------
    def decode_pod(self) -> Obj:
        pods = [p for p in self.emulator.of_kind("Pod", self.namespace)
                if p["metadata"]["name"].startswith(self.profile.decode_deployment)]
        return sorted(pods, key=lambda p: str(p["metadata"]["name"]))[0]

    def break_pod_ready(self) -> str:
        pod = self.decode_pod()
        status = pod["status"]
        status["conditions"] = [_cond("Ready", "False", "ContainersNotReady",
                                      "containers with unready status: [vllm]")]
        for c in status["containerStatuses"]:
            if c["name"] == self.profile.decode_containers[0]:
                c.update(ready=False, restartCount=7, state={"waiting": {
                    "reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting"}})
        self.emulator.put(pod)
        return str(pod["metadata"]["name"])

    def break_weights(self, plugin: str = "prefix-cache-scorer", weight: int = 5) -> None:
        cm = self.emulator.find("ConfigMap", self.profile.epp_configmap, self.namespace)
        assert cm is not None
        config = yaml.safe_load(cm["data"][self.profile.epp_config_key])
        for prof in config["schedulingProfiles"]:
            for ref in prof["plugins"]:
                if ref["pluginRef"] == plugin:
                    ref["weight"] = weight
        cm["data"][self.profile.epp_config_key] = yaml.safe_dump(config)
        self.emulator.put(cm)

    def break_route_accepted(self) -> None:
        route = self.emulator.find("HTTPRoute", self.profile.route_name, self.namespace)
        assert route is not None
        route["status"]["parents"][0]["conditions"][0] = _cond(
            "Accepted", "False", "NotAllowedByListeners", "no listener allows this route")
        self.emulator.put(route)

    def break_gateway_class(self, gateway_class: str = "another-controller") -> None:
        gateway = self.emulator.find("Gateway", self.profile.gateway_name, self.namespace)
        assert gateway is not None
        gateway["spec"]["gatewayClassName"] = gateway_class
        self.emulator.put(gateway)

    def accept_pool_elsewhere(self, gateway: str = "another-teams-gateway") -> None:
        """The pool's only parent entry is another Gateway's (a pool shared across Gateways)."""
        pool = self.emulator.find("InferencePool", self.profile.pool_name, self.namespace)
        assert pool is not None
        for parent in pool["status"].get("parents") or pool["status"].get("parent") or ():
            parent["parentRef"]["name"] = gateway
        self.emulator.put(pool)


class CurrentGuideSeed(GuideSeed):
    """The current guide (``tests/data/guide/current``): the router chart's objects for the
    mode and provider, the model-server overlay, and the provider's Gateway recipe (provider
    none: a Gateway of the user's, here a minimal one)."""

    def __init__(self, emulator: Emulator, provider: str,
                 namespace: str = CURRENT_NS) -> None:
        super().__init__(emulator, "current", provider, namespace, CURRENT_POSTFIX)

    def rendered(self) -> list[tuple[str, Path]]:
        router = self.profile.router
        assert router is not None
        mode = "standalone" if self.provider.mode == "standalone" else \
            f"gateway-{self.provider.name}"
        overlay = router.modelserver_overlay.removeprefix("modelserver/").replace("/", "-")
        files = [("router", self.source / mode / "router.yaml"),
                 ("modelserver", self.source / "modelserver" / f"{overlay}.yaml")]
        if router.gateway_recipe:
            recipe = router.gateway_recipe.rsplit("/", 1)[-1]
            named = self.source / mode / f"gateway-{recipe}.yaml"
            files.append(("gateway", named if named.exists() else
                          self.source / mode / "gateway.yaml"))
        return files

    def release_objects(self) -> list[Obj]:
        objs = super().release_objects()
        if self.provider.gateway_api and not any(o["kind"] == "Gateway" for o in objs):
            gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                       "metadata": {"name": self.profile.gateway_name,
                                    "namespace": self.namespace},
                       "spec": {"gatewayClassName": "users-own",
                                "listeners": [{"name": "default", "port": 80,
                                               "protocol": "HTTP"}]}}
            gateway["status"] = copy.deepcopy(GATEWAY_STATUS)
            objs.append(gateway)
        return objs

    def route(self) -> Obj | None:
        return None  # the router chart makes the HTTPRoute (httpRoute.create=true)


def seed_guide(emulator: Emulator, version: str, provider: str, namespace: str) -> GuideSeed:
    return GuideSeed(emulator, version, provider, namespace).seed()
