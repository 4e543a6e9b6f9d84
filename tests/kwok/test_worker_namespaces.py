"""Per-xdist-worker install namespaces and the HF token Secret, on a real API server.

Workers that install into one namespace collide (the GAIE chart's metrics Secret, the
standalone chart's Envoy ConfigMap and the model-server overlays are not named per release),
so each installing worker works in ``<namespace>-<worker>``. A fresh namespace has no token
Secret: the install creates it from env ``HF_TOKEN`` (as the guide tells users to) and cleanup
removes it; without the variable the install stops naming the namespace.

The current guide in standalone mode is installed with helm and kubectl answered from a
recording (no charts offline); the namespace, the Secret, the baseline Service and the
cleanup are the kwok control plane's.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from fixtures.cluster import ClusterError
from fixtures.cluster.commands import RecordedRunner
from fixtures.cluster.kube import RESOURCES, KubeClient
from fixtures.cluster.portforward import ApiServerProxy, PortForward
from fixtures.kwok import KwokCluster
from fixtures.options import HarnessOptions
from fixtures.targets.cluster import ClusterTarget

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

BASE_NS = "ll-workers"
FAKE_TOKEN = "hf_workerNamespaceFAKE0123456789"
SECRET = "llm-d-hf-token"


@pytest.fixture(scope="module")
def kube(kwok_cluster: KwokCluster) -> KubeClient:
    return KubeClient.from_kubeconfig(config_file=str(kwok_cluster.kubeconfig))


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No overrides of the seams; short polls; no token and no worker unless a test sets one."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "PYTEST_XDIST_WORKER",
                 "LAMPLIGHTER_GATEWAY_URL", "LAMPLIGHTER_BASELINE_URL",
                 "LAMPLIGHTER_POD_ACCESS", "LAMPLIGHTER_COMMAND_RECORDINGS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LAMPLIGHTER_TIMEOUTS", "delete=90,poll_interval=0.2,port_forward=5")
    return monkeypatch


def _guide(root: Path) -> Path:
    """An llm-d checkout's layout, only the files the standalone install names."""
    guide = root / "guides" / "optimized-baseline"
    for path in ("router/optimized-baseline.values.yaml", "../recipes/router/base.values.yaml",
                 "modelserver/gpu/vllm/base/kustomization.yaml"):
        (guide / path).parent.mkdir(parents=True, exist_ok=True)
        (guide / path).write_text("{}\n")
    return guide


def _target(kube: KubeClient, tmp_path: Path, name: str,
            namespace: str = BASE_NS) -> tuple[ClusterTarget, Path]:
    """A current-guide standalone install; helm and kubectl answered from a recording."""
    recordings = tmp_path / "recordings"
    recordings.mkdir(exist_ok=True)
    (recordings / "recordings.yaml").write_text(
        '- {match: "helm *", stdout: ""}\n- {match: "kubectl *", stdout: ""}\n')
    run_dir = tmp_path / name
    options = HarnessOptions(target="cluster", gateway="standalone", namespace=namespace,
                             guide_dir=_guide(tmp_path / "llm-d"), guide_version="current",
                             scheduler="llm-d")
    calls = run_dir / "logs" / "commands.jsonl"
    return ClusterTarget(options, run_dir, kube=kube, runner=RecordedRunner(recordings, calls)), \
        calls


def _argvs(calls: Path) -> list[list[str]]:
    return [json.loads(line)["argv"] for line in calls.read_text().splitlines()]


def _namespace_of(argv: list[str]) -> str:
    return argv[argv.index("-n") + 1]


def test_two_workers_install_into_two_namespaces_and_clean_both_up(
        kube: KubeClient, tmp_path: Path, env: pytest.MonkeyPatch) -> None:
    env.setenv("HF_TOKEN", FAKE_TOKEN)
    forwarded: list[list[str]] = []

    def forward(self: PortForward, *args: object, **kwargs: object) -> str:
        forwarded.append(self.argv())
        return "http://127.0.0.1:1"

    env.setattr(PortForward, "start", forward)
    env.setattr(ApiServerProxy, "start", lambda self, *a, **k: "http://127.0.0.1:2")
    targets = []
    for worker in ("gw0", "gw1"):
        env.setenv("PYTEST_XDIST_WORKER", worker)
        target, calls = _target(kube, tmp_path, worker)
        target.install_guide()
        targets.append((worker, target, calls))
        gateway, baseline = target.gateway_url(), target.baseline_url()
        assert gateway == "http://127.0.0.1:1"
        assert baseline.startswith(f"http://127.0.0.1:2/api/v1/namespaces/{BASE_NS}-{worker}/")

    for worker, target, calls in targets:
        ns = f"{BASE_NS}-{worker}"
        assert target.view.namespace == target.installer.view.namespace == ns
        assert kube.get(RESOURCES["Namespace"], ns) is not None
        assert kube.get_metadata(RESOURCES["Secret"], SECRET, ns) is not None
        assert kube.get(RESOURCES["Service"], f"lamplighter-baseline-{target.profile.postfix}",
                        ns) is not None
        installs = [a for a in _argvs(calls) if "-n" in a]
        assert installs and {_namespace_of(a) for a in installs} == {ns}
    assert [_namespace_of(a) for a in forwarded] == [f"{BASE_NS}-gw0", f"{BASE_NS}-gw1"]
    assert kube.get(RESOURCES["Namespace"], BASE_NS) is None, "no worker used the bare name"

    for worker, target, _ in targets:
        target.down()
        assert kube.get(RESOURCES["Namespace"], f"{BASE_NS}-{worker}") is None


def test_the_token_secret_is_created_from_hf_token_never_logged_and_removed_on_cleanup(
        kube: KubeClient, tmp_path: Path, env: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """No xdist: the namespace as given. It exists (the user's), the Secret does not."""
    ns = f"{BASE_NS}-users"
    kube.create(RESOURCES["Namespace"], {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": ns}})
    env.setenv("HF_TOKEN", FAKE_TOKEN)
    caplog.set_level(logging.DEBUG)
    target, calls = _target(kube, tmp_path, "users", namespace=ns)

    target.install_guide()

    secret = kube.get(RESOURCES["Secret"], SECRET, ns)  # the test reads it; the harness never
    assert secret is not None and secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["HF_TOKEN"]).decode() == FAKE_TOKEN
    assert (RESOURCES["Secret"], SECRET, ns) in target.installer.ledger.created
    assert f"created Secret {ns}/{SECRET} (key HF_TOKEN) from env HF_TOKEN" in caplog.text, \
        "control: the harness's log lines are captured here"
    target.down()

    assert kube.get_metadata(RESOURCES["Secret"], SECRET, ns) is None, "cleanup removes it"
    assert kube.get(RESOURCES["Namespace"], ns) is not None, "the user's namespace stays"
    encoded = base64.b64encode(FAKE_TOKEN.encode()).decode()
    texts = {"log records": caplog.text, **{str(p): p.read_text(errors="replace")
                                            for p in target.run_dir.rglob("*") if p.is_file()}}
    assert str(calls) in texts, "control: the calls log was written"
    for where, text in texts.items():
        assert FAKE_TOKEN not in text and encoded not in text, f"token in {where}"
    kube.delete(RESOURCES["Namespace"], ns)


def test_without_the_secret_or_hf_token_the_install_stops_naming_the_worker_namespace(
        kube: KubeClient, tmp_path: Path, env: pytest.MonkeyPatch) -> None:
    env.setenv("PYTEST_XDIST_WORKER", "gw7")
    target, calls = _target(kube, tmp_path, "gw7")
    ns = f"{BASE_NS}-gw7"
    with pytest.raises(ClusterError, match=rf"Secret {ns}/{SECRET}: not found in namespace "
                                           rf"{ns} \(.*set env HF_TOKEN"):
        target.install_guide()
    assert not calls.exists(), "nothing installed before the Secret is there"
    assert kube.get_metadata(RESOURCES["Secret"], SECRET, ns) is None
    target.down()
    assert kube.get(RESOURCES["Namespace"], ns) is None, "the namespace it made is removed"
