"""``lamplighter up`` refuses a bad EPP config or simulator value before it starts anything:
exit 2, one line naming flag or file, field and value, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.stack_cli import check_epp_config

REPO = Path(__file__).resolve().parents[2]
GOOD_CONFIG = ("apiVersion: inference.networking.x-k8s.io/v1alpha1\n"
               "kind: EndpointPickerConfig\nplugins:\n- type: prefix-cache-scorer\n"
               "- type: max-score-picker\n"
               "schedulingProfiles:\n- name: default\n  plugins:\n"
               "  - pluginRef: prefix-cache-scorer\n  - pluginRef: max-score-picker\n")


def _up(*flags: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fixtures.stack_cli", "up", "--stack-file", "s.json",
         "--log-dir", "logs", *flags], cwd=cwd, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})


def _one_refusal(out: subprocess.CompletedProcess[str], cwd: Path) -> str:
    """The single stderr line of an exit-2 refusal that started nothing."""
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert not (cwd / "logs").exists(), "something was started"
    assert not (cwd / "s.pid").exists()
    return lines[0]


@pytest.mark.parametrize(("flags", "named"), [
    (["--num-gpu-blocks", "0"], "pod sim-0: argument --num-gpu-blocks: must be >= 1, got '0'"),
    (["--time-scale", "-1"], "argument --time-scale: must be > 0, got '-1.0'"),
    (["--decode-ms-per-seq", "-0.5"], "argument --decode-ms-per-seq: must be >= 0, got '-0.5'"),
    (["--speed-factors", "1,-2"], "pod sim-1: argument --speed-factor: must be > 0, got '-2.0'"),
    (["--max-num-seqs", "-3"], "argument --max-num-seqs: must be >= 1, got '-3'"),
    (["--pods", "0"], "--pods 0"),
])
def test_up_refuses_bad_simulator_values_before_spawning(
    tmp_path: Path, flags: list[str], named: str,
) -> None:
    assert named in _one_refusal(_up(*flags, cwd=tmp_path), tmp_path)


@pytest.mark.parametrize(("scheduler", "text", "named"), [
    ("ref", "apiVersion: nonsense/v9\nkind: EndpointPickerConfig\n", "apiVersion"),
    ("ref", "plugins: [\n", "invalid YAML"),
    ("ref", GOOD_CONFIG.replace("prefix-cache-scorer\n-", "no-such-plugin-type\n-", 1),
     "type: unknown plugin type 'no-such-plugin-type'"),
    ("llm-d", "plugins: [\n", "invalid YAML"),
    ("llm-d", "kind: Deployment\n", "kind: expected EndpointPickerConfig, got 'Deployment'"),
])
def test_up_refuses_a_broken_epp_config_naming_file_and_field(
    tmp_path: Path, scheduler: str, text: str, named: str,
) -> None:
    (tmp_path / "epp.yaml").write_text(text)
    line = _one_refusal(_up("--scheduler", scheduler, "--epp-config", "epp.yaml",
                            cwd=tmp_path), tmp_path)
    assert "--epp-config epp.yaml" in line and named in line, line


def test_a_missing_epp_config_is_named(tmp_path: Path) -> None:
    line = _one_refusal(_up("--epp-config", "nope.yaml", cwd=tmp_path), tmp_path)
    assert line == "lamplighter up: --epp-config nope.yaml: no such file"


@pytest.mark.parametrize("scheduler", ["ref", "llm-d"])
def test_the_config_check_accepts_a_good_config(tmp_path: Path, scheduler: str) -> None:
    """Control: the check refuses only what is wrong (in-process, nothing is started)."""
    (tmp_path / "epp.yaml").write_text(GOOD_CONFIG)
    check_epp_config(tmp_path / "epp.yaml", scheduler)
