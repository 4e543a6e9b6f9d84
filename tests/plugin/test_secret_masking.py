"""The HF token never reaches a report: junit, allure, report.yaml and the terminal."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fixtures.secret_masking import MIN_PART, mask
from fixtures.stack import Stack

pytest_plugins = ("pytester",)

FAKE_TOKEN = "hf_lamplighterFAKEtoken0123456789abcdefXYZ"
SUITE = '''
import os
import pytest

def test_quotes_the_token():
    token = os.environ["HF_TOKEN"]
    print("header: Bearer " + token)
    assert token == "something else", "bad token " + token

def test_skips_quoting_the_token():
    pytest.skip("no access with " + os.environ["HF_TOKEN"])

def test_passes():
    pass
'''


def leaks(root: Path, secret: str) -> list[str]:
    """Files under ``root`` holding ``secret`` raw or base64-encoded."""
    needles = [secret.encode(), base64.b64encode(secret.encode())]
    return [str(path.relative_to(root)) for path in sorted(root.rglob("*"))
            if path.is_file() and any(n in path.read_bytes() for n in needles)]


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
         *args: str) -> tuple[pytest.RunResult, Path]:
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    pytester.makepyfile(test_suite=SUITE)
    reports = pytester.path / "reports"
    result = pytester.runpytest_subprocess("-p", "fixtures.plugin", "--report-dir",
                                           str(reports), "-l", "-rA", *args)
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    (reports / "terminal.txt").write_text("\n".join(result.outlines + result.errlines))
    return result, reports


def test_a_failure_quoting_the_token_is_masked_in_every_report(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    result, reports = _run(pytester, monkeypatch)
    assert not leaks(reports, FAKE_TOKEN)
    assert not leaks(reports, FAKE_TOKEN[:MIN_PART + 4]), "a cut form of the token leaked"
    assert not leaks(reports, FAKE_TOKEN[-(MIN_PART + 4):]), "a cut form of the token leaked"
    assert "bad token <redacted>" in (reports / "latest" / "report.yaml").read_text()
    assert "no access with <redacted>" in result.stdout.str()  # a skip stays a skip


def test_without_the_masking_the_token_would_leak(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Negative control: the same run with the masking plugin blocked leaks everywhere."""
    _, reports = _run(pytester, monkeypatch, "-p", "no:lamplighter-secret-masking")
    leaked = leaks(reports, FAKE_TOKEN)
    assert "terminal.txt" in leaked and any(p.endswith("report.yaml") for p in leaked), leaked
    assert any(p.endswith("junit.xml") for p in leaked), leaked
    assert leaks(reports, FAKE_TOKEN[:MIN_PART + 4])  # pytest printed it cut as well


def test_a_cut_token_is_masked_on_both_sides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    cut = f"assert '{FAKE_TOKEN[:12]}...{FAKE_TOKEN[-12:]}' == 'x'"
    assert mask(cut) == "assert '<redacted>...<redacted>' == 'x'"
    assert mask("nothing... to see") == "nothing... to see"


def test_the_scan_finds_a_planted_token(tmp_path: Path) -> None:
    """Negative control of the scan: raw and base64 forms, nested files."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "log.txt").write_text(f"token={FAKE_TOKEN}\n")
    (tmp_path / "secret.yaml").write_bytes(base64.b64encode(FAKE_TOKEN.encode()))
    (tmp_path / "clean.txt").write_text("nothing here")
    assert leaks(tmp_path, FAKE_TOKEN) == ["a/b/log.txt", "secret.yaml"]


REPO = Path(__file__).resolve().parents[2]
PLANTED_FAILURE = '''
import os

def test_fails_with_the_token_around(stack):
    token = os.environ["HF_TOKEN"]
    assert stack.gateway_url == token
'''


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_seeded_hf_token_appears_in_no_artifact_of_a_run(tmp_path: Path) -> None:
    """The token is in every process's environment (``HF_TOKEN`` and aliases), in
    ``$HF_HOME/token`` and in the client's ``Authorization`` header. After ``lamplighter
    up``, a request, the inference suite against the stack file (plus one failing test
    that holds the token) and ``lamplighter down``, no file the run left holds it."""
    hf_home = tmp_path / "hf-home"
    hf_home.mkdir()
    (hf_home / "token").write_text(FAKE_TOKEN)
    env = {**os.environ, "HF_TOKEN": FAKE_TOKEN, "HUGGING_FACE_HUB_TOKEN": FAKE_TOKEN,
           "HF_HOME": str(hf_home), "PYTHONPATH": str(REPO)}
    run_dir = tmp_path / "run"
    stack_file, reports = run_dir / "stack.json", run_dir / "reports"
    (run_dir / "extra").mkdir(parents=True)
    failing = run_dir / "extra" / "test_planted.py"
    failing.write_text(PLANTED_FAILURE)

    def run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
        with open(run_dir / "terminal.txt", "a") as terminal:  # scanned like the rest
            terminal.write(done.stdout + done.stderr)
        return done

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run([sys.executable, "-m", "fixtures.stack_cli", *args], timeout=120)

    up = cli("up", "--stack-file", str(stack_file), "--log-dir", str(run_dir / "logs"),
             "--pods", "2")
    try:
        assert up.returncode == 0, up.stderr
        stack = Stack.read(stack_file)
        reply = httpx.post(f"{stack.gateway_url}/v1/completions", timeout=30,
                           headers={"Authorization": f"Bearer {FAKE_TOKEN}"},
                           json={"model": stack.model, "prompt": "hello", "max_tokens": 2})
        assert reply.status_code == 200, reply.text
        suites = run([sys.executable, "-m", "pytest", "suites/inference", str(failing),
                      "-p", "no:cacheprovider", "--stack-file", str(stack_file),
                      "--report-dir", str(reports), "-q", "-l"], timeout=240)
        assert suites.returncode == 1, suites.stdout[-2000:]  # only the planted failure
        assert "1 failed" in suites.stdout, suites.stdout[-2000:]
    finally:
        cli("down", "--stack-file", str(stack_file))
    assert list(reports.rglob("report.yaml")) and list(reports.rglob("junit.xml"))
    assert list((run_dir / "logs").glob("*.log"))
    leaked = [p for p in leaks(run_dir, FAKE_TOKEN) if p != "extra/test_planted.py"]
    assert not leaked, f"the HF token leaked into: {leaked}"
