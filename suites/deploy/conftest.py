"""The installed guide, per provider, for the deploy checks (cluster targets only).

One install per session and provider (``helmfile apply`` or, with ``--no-install``, the
existing one). When any test failed, diagnostics go to ``<run>/diagnostics/deploy-<provider>-
<worker>/`` BEFORE cleanup; ``--keep-stack`` / ``--keep-on-failure`` skip the cleanup.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cluster.guide import GuideView
from fixtures.cluster.profiles import GuideProfile
from fixtures.options import HarnessOptions
from fixtures.support import not_supported
from fixtures.targets import make_target


@pytest.fixture(scope="session")
def deployed(request: pytest.FixtureRequest, harness_options: HarnessOptions, provider: str,
             run_dir: Path) -> Iterator[GuideView]:
    """The guide as installed for ``provider`` (read through the kube and command seams)."""
    if harness_options.target == "local":
        not_supported("the local target has no Kubernetes objects to verify")
    options = harness_options.for_provider(provider)
    target = make_target(options, run_dir)
    reason = target.unsupported_reason()  # type: ignore[attr-defined]
    if reason:
        not_supported(reason)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    dest = run_dir / "diagnostics" / f"deploy-{provider}-{worker}"
    failed_before = request.session.testsfailed
    try:
        view: GuideView = target.deploy()  # type: ignore[attr-defined]
    except BaseException:
        target.collect_diagnostics(dest)
        target.down()
        raise
    try:
        yield view
    finally:
        failed = request.session.testsfailed > failed_before
        if failed:
            target.collect_diagnostics(dest)
        if not (options.keep_stack or (options.keep_on_failure and failed)):
            target.down()


@pytest.fixture(scope="session")
def profile(deployed: GuideView) -> GuideProfile:
    return deployed.profile

