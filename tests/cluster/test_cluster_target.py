"""ClusterTarget install → up → down against the emulator, helmfile faked by recordings.

On kwok's real API server instead: per-worker namespaces, the HF token Secret (made from
HF_TOKEN, or its absence refused before anything is installed) and their cleanup
(``tests/kwok/test_worker_namespaces.py``)."""

from __future__ import annotations

import base64
import json
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fixtures.cluster import ClusterError, KubeError
from fixtures.cluster.commands import CommandResult, RecordedRunner
from fixtures.cluster.kube import RESOURCES, KubeClient, Resource
from fixtures.cluster.paths import guide_fixture_dir
from fixtures.cluster.portforward import ApiServerProxy, PortForward
from fixtures.options import HarnessOptions
from fixtures.targets.cluster import ClusterTarget, install_namespace
from tests.support import DATA

from .conftest import require_guide_fixtures
from .emulator import Emulator
from .seed import FAKE_HF_TOKEN, GuideSeed

NS = "lamplighter-e2e"


class HelmfileOnEmulator(RecordedRunner):
    """Recorded answers, plus the effect of ``helmfile apply/destroy`` on the emulated API."""

    def __init__(self, directory: Path, calls_log: Path, seed: GuideSeed) -> None:
        super().__init__(directory, calls_log)
        self.seed = seed

    def run(self, argv: Sequence[str], *, cwd: Path | None = None,
            env: Mapping[str, str] | None = None, timeout: float = 60.0,
            check: bool = True) -> CommandResult:
        result = super().run(argv, cwd=cwd, env=env, timeout=timeout, check=check)
        if argv[0] == "helmfile" and argv[-1] == "apply":
            for obj in self.seed.release_objects():
                self.seed.emulator.put(obj)
        if argv[0] == "helmfile" and argv[-1] == "destroy":
            for obj in list(self.seed.emulator.objects.values()):
                if "lamplighter.test/release" in (obj["metadata"].get("labels") or {}):
                    self.seed.emulator.remove(obj)
        return result


class _Models(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"object": "list", "data": [{"id": "Qwen/Qwen3-0.6B"}]}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def model_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_install_up_and_cleanup_leave_nothing_behind(
        emulator: Emulator, tmp_path: Path, model_server: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    require_guide_fixtures("v0.2")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("LAMPLIGHTER_TIMEOUTS", "ready=5,gateway_programmed=5,route_accepted=5,"
                       "convergence=5,delete=5,poll_interval=0.05")
    monkeypatch.setenv("LAMPLIGHTER_GATEWAY_URL", model_server)
    monkeypatch.setenv("LAMPLIGHTER_BASELINE_URL", model_server)
    monkeypatch.setenv("LAMPLIGHTER_POD_ACCESS", "direct")  # no kubectl proxy in the emulator
    guide_dir = tmp_path / "guide"
    guide_dir.mkdir()
    for name in ("httproute.yaml", "httproute.gke.yaml"):  # v0.2: hardcoded namespace
        shutil.copy(guide_fixture_dir("v0.2") / name, guide_dir / name)
    run_dir = tmp_path / "run"
    options = HarnessOptions(target="cluster", gateway="istio", namespace=NS,
                             guide_dir=guide_dir, guide_version="v0.2", scheduler="ref")
    kube = KubeClient.from_kubeconfig(config_file=str(emulator.kubeconfig(tmp_path / "kc")))
    probe = ClusterTarget(options, run_dir, kube=kube)
    seed = GuideSeed(emulator, "v0.2", "istio", NS, postfix=probe.profile.postfix)
    for obj in seed.prerequisites():
        emulator.put(obj)
    emulator.controllers.append(seed.accept_routes)
    before = set(emulator.objects)
    calls = run_dir / "logs" / "commands.jsonl"
    runner = HelmfileOnEmulator(DATA / "recordings" / "v0.2", calls, seed)
    target = ClusterTarget(options, run_dir, kube=kube, runner=runner)

    stack = target.up()

    postfix = target.profile.postfix
    assert postfix.startswith("ll") and postfix != "inference-scheduling"
    assert stack.gateway_url == model_server and stack.provider == "istio"
    assert len(stack.pods) == 2 and all(p.address.endswith(":8000") for p in stack.pods)
    route = emulator.find("HTTPRoute", f"llm-d-{postfix}", NS)
    assert route is not None, "the harness applies the provider's route"
    assert route["spec"]["parentRefs"][0]["name"] == f"infra-{postfix}-inference-gateway"
    baseline = emulator.find("Service", f"lamplighter-baseline-{postfix}", NS)
    assert baseline is not None
    assert baseline["spec"]["selector"] == target.profile.decode_labels
    argvs = [json.loads(line)["argv"] for line in calls.read_text().splitlines()]
    assert ["helmfile", "-e", "istio", "-n", NS, "apply"] in argvs
    assert any(a[-6:-4] == ["deployment", f"gaie-{postfix}-epp"] and "patch" in a for a in argvs)

    target.collect_diagnostics(run_dir / "diagnostics" / "istio-main")
    target.down()

    assert ["helmfile", "-e", "istio", "-n", NS, "destroy"] in [
        json.loads(line)["argv"] for line in calls.read_text().splitlines()]
    assert set(emulator.objects) == before, "cleanup left objects the harness created"
    encoded = base64.b64encode(FAKE_HF_TOKEN.encode()).decode()
    for path in run_dir.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert FAKE_HF_TOKEN not in text and encoded not in text, path


def test_cleanup_goes_on_after_a_failed_step_and_reports_it(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A route that will not delete must not leave the releases or the namespace behind."""
    options = HarnessOptions(target="cluster", gateway="istio", namespace=NS,
                             guide_dir=tmp_path, guide_version="v0.3")
    kube = KubeClient.from_kubeconfig(config_file=str(emulator.kubeconfig(tmp_path / "kc")))
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("LAMPLIGHTER_TIMEOUTS", "delete=2,poll_interval=0.05")
    target = ClusterTarget(options, tmp_path / "run", kube=kube,
                           runner=RecordedRunner(DATA / "recordings" / "v0.3", calls))
    installer = target.installer
    installer.ensure_namespace()
    installer.ledger.helm_installed = True
    missing_route = (RESOURCES["HTTPRoute"], "no-such-route", NS)
    installer.ledger.add(*missing_route)
    real_delete = kube.delete

    def delete(res: Resource, name: str, namespace: str | None = None) -> bool:
        if name == "no-such-route":
            raise KubeError(f"DELETE {name}: HTTP 500: injected")
        return real_delete(res, name, namespace)

    monkeypatch.setattr(kube, "delete", delete)
    with pytest.raises(ClusterError, match="cleanup incomplete: delete HTTPRoute no-such-route"):
        target.down()
    argvs = [json.loads(line)["argv"] for line in calls.read_text().splitlines()]
    assert ["helmfile", "-e", "istio", "-n", NS, "destroy"] in argvs
    assert emulator.find("Namespace", NS) is None, "the namespace is removed after the failure"


def test_the_epp_swap_patches_image_and_pull_policy_together(tmp_path: Path) -> None:
    """kind-loaded images exist on no registry: ``Always`` (the guide's v0.3 policy) would
    send the kubelet to pull one; the swap must set IfNotPresent in the same patch."""
    options = HarnessOptions(target="cluster", gateway="istio", namespace=NS,
                             guide_dir=tmp_path, guide_version="v0.3")
    calls = tmp_path / "calls.jsonl"
    target = ClusterTarget(options, tmp_path / "run", kube=object(),  # type: ignore[arg-type]
                           runner=RecordedRunner(DATA / "recordings" / "v0.3", calls))
    target.installer.use_scheduler_ref()
    (argv,) = [json.loads(line)["argv"] for line in calls.read_text().splitlines()]
    assert argv[argv.index("patch") + 1:argv.index("patch") + 2] == ["deployment"]
    patch = json.loads(argv[argv.index("-p") + 1])
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    assert container["imagePullPolicy"] == "IfNotPresent" and "scheduler-ref" in container["image"]
    assert argv[argv.index("--type") + 1] == "strategic"


def test_helm_and_kubectl_reads_name_the_kube_context(tmp_path: Path) -> None:
    """``--kube-context`` must reach every helm/kubectl call, not only installs: otherwise
    the releases of whatever cluster is current are checked."""
    options = HarnessOptions(target="cluster", gateway="istio", namespace=NS,
                             guide_dir=tmp_path, guide_version="v0.3", kube_context="ctx-a")
    calls = tmp_path / "calls.jsonl"
    target = ClusterTarget(options, tmp_path / "run", kube=object(),  # type: ignore[arg-type]
                           runner=RecordedRunner(DATA / "recordings" / "v0.3", calls))
    target.view.helm_releases()
    (argv,) = [json.loads(line)["argv"] for line in calls.read_text().splitlines()]
    assert argv[:3] == ["helm", "--kube-context", "ctx-a"] and "list" in argv
    assert target.view.kubectl_argv("describe", "pod", "p")[:3] == ["kubectl", "--context",
                                                                       "ctx-a"]


def test_hf_secret_is_checked_by_metadata_only(emulator: Emulator, tmp_path: Path) -> None:
    """Presence needs no token in this process: a metadata GET, never the Secret's data."""
    require_guide_fixtures("v0.3")
    GuideSeed(emulator, "v0.3", "istio", NS).seed()
    options = HarnessOptions(target="cluster", gateway="istio", namespace=NS,
                             guide_version="v0.3", install=False)
    kube = KubeClient.from_kubeconfig(config_file=str(emulator.kubeconfig(tmp_path / "kc")))
    target = ClusterTarget(options, tmp_path, kube=kube)
    assert target.view.hf_secret_problem() is None
    assert emulator.secret_data_reads == []
    assert kube.get(RESOURCES["Secret"], "llm-d-hf-token", NS) is not None
    assert len(emulator.secret_data_reads) == 1, "control: a full read is seen"
    secret = emulator.find("Secret", "llm-d-hf-token", NS)
    assert secret is not None
    emulator.remove(secret)
    assert target.view.hf_secret_problem() == (
        f"Secret {NS}/llm-d-hf-token: not found in namespace {NS} (create it: kubectl create "
        f"secret generic llm-d-hf-token -n {NS} --from-literal=HF_TOKEN=<token>; or set env "
        "HF_TOKEN and an install creates it)")


def test_baseline_is_reached_through_the_api_servers_service_proxy(
        emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``port-forward service/...`` tunnels to one pod; the service proxy picks an endpoint per
    request, so the baseline spreads over the decode pods as a Service does. On the emulator:
    kube-apiserver refuses to proxy to a loopback pod IP ("address not allowed", tried on
    kwok, whose pods must stay on 127.0.0.0/8)."""
    require_guide_fixtures("v0.3")
    GuideSeed(emulator, "v0.3", "istio", NS).seed()
    monkeypatch.delenv("LAMPLIGHTER_BASELINE_URL", raising=False)
    started: list[list[str]] = []

    def start(self: ApiServerProxy, timeout: float, interval: float = 0.5) -> str:
        started.append(self.argv())
        return "http://127.0.0.1:8001"

    monkeypatch.setattr(ApiServerProxy, "start", start)
    monkeypatch.setattr(PortForward, "start", lambda *a, **k: pytest.fail("port-forward"))
    options = HarnessOptions(target="cluster", gateway="istio", namespace=NS,
                             guide_version="v0.3", install=False, kube_context="ctx")
    kube = KubeClient.from_kubeconfig(config_file=str(emulator.kubeconfig(tmp_path / "kc")))
    target = ClusterTarget(options, tmp_path, kube=kube)
    url = target.baseline_url()
    name = f"lamplighter-baseline-{target.profile.postfix}"
    assert url == f"http://127.0.0.1:8001/api/v1/namespaces/{NS}/services/{name}:80/proxy"
    assert started and started[0][:4] == ["kubectl", "--context", "ctx", "proxy"]
    target.down()
    assert emulator.find("Service", name, NS) is None


def test_pods_are_reached_through_the_api_servers_pod_proxy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CI runner cannot route pod IPs: metrics and admin calls go through the pod proxy,
    while ``address`` stays the pod IP the EPP names; ``LAMPLIGHTER_POD_ACCESS=direct`` (an
    in-cluster runner) uses the IPs themselves."""
    monkeypatch.delenv("LAMPLIGHTER_POD_ACCESS", raising=False)
    options = HarnessOptions(target="cluster", gateway="istio", namespace=NS,
                             guide_version="v0.3")
    target = ClusterTarget(options, tmp_path)
    target._proxy_base = "http://127.0.0.1:8001"  # what `kubectl proxy` would print
    pod = {"metadata": {"name": "decode-0"}, "status": {"podIP": "10.4.0.7"}}
    made = target._pod(pod)
    proxy = f"http://127.0.0.1:8001/api/v1/namespaces/{NS}/pods/decode-0"
    metrics = target.profile.metrics_port  # v0.3: vLLM's own port behind the routing sidecar
    assert (made.url, made.metrics_url, made.address) == (
        f"{proxy}:8000/proxy", f"{proxy}:{metrics}/proxy/metrics", "10.4.0.7:8000")
    monkeypatch.setenv("LAMPLIGHTER_POD_ACCESS", "direct")
    direct = target._pod(pod)
    assert (direct.url, direct.address) == ("http://10.4.0.7:8000", "10.4.0.7:8000")



@pytest.mark.parametrize(("worker", "install", "expected"), [
    ("gw1", True, f"{NS}-gw1"), (None, True, NS), ("gw1", False, NS)])
def test_the_namespace_is_per_worker_only_when_installing_under_xdist(
        worker: str | None, install: bool, expected: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Installs from two workers into one namespace collide (chart objects not named per
    release); ``--no-install`` verifies the namespace it is given."""
    if worker:
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    assert install_namespace(NS, install) == expected
    options = HarnessOptions(target="cluster", gateway="istio", namespace=NS,
                             guide_dir=tmp_path, guide_version="v0.3", install=install)
    calls = tmp_path / "calls.jsonl"
    target = ClusterTarget(options, tmp_path / "run", kube=object(),  # type: ignore[arg-type]
                           runner=RecordedRunner(DATA / "recordings" / "v0.3", calls))
    forwarded: list[list[str]] = []

    def forward(self: PortForward, *args: object, **kwargs: object) -> str:
        forwarded.append(self.argv())
        return "http://127.0.0.1:1"

    monkeypatch.setattr(PortForward, "start", forward)
    monkeypatch.setattr(ApiServerProxy, "start", lambda self, *a, **k: "http://127.0.0.1:2")
    monkeypatch.delenv("LAMPLIGHTER_GATEWAY_URL", raising=False)
    monkeypatch.delenv("LAMPLIGHTER_POD_ACCESS", raising=False)

    target.gateway_url()
    pod = target._pod({"metadata": {"name": "p"}, "status": {"podIP": "10.0.0.1"}})
    target.installer.use_scheduler_ref()

    assert target.view.namespace == target.installer.view.namespace == expected
    assert forwarded[0][forwarded[0].index("-n") + 1] == expected
    assert pod.url.startswith(f"http://127.0.0.1:2/api/v1/namespaces/{expected}/pods/p:")
    (patch,) = [json.loads(line)["argv"] for line in calls.read_text().splitlines()]
    assert patch[patch.index("-n") + 1] == expected
    assert target.installer._helmfile("apply")[-2:] == [expected, "apply"]
