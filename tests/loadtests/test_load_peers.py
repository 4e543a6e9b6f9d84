"""The inference-perf config mirrors a LoadSpec with inference-perf's own parameter names."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from loadtests import peers
from loadtests.peers import inference_perf_config
from loadtests.runconfig import LoadSpec
from loadtests.workloads import load_workload

WL = load_workload(
    {
        "type": "shared_prefix",
        "seed": 9,
        "shared_prefix": {
            "num_groups": 2,
            "num_prompts_per_group": 3,
            "system_prompt_len": 16,
            "question_len": 4,
            "output_len": 2,
        },
    }
)


BENCH_PYTHON = Path(__file__).resolve().parents[2] / ".venv-bench" / "bin" / "python"
# inference-perf's own loader, so a renamed or misplaced key fails here, not in a long run
_VALIDATE = """
import json, sys
from inference_perf.config import read_config
cfg = read_config(sys.argv[1])
sp = cfg.data.shared_prefix
print(json.dumps({"groups": sp.num_groups, "per_group": sp.num_prompts_per_group,
                  "system": sp.system_prompt_len, "question": sp.question_len,
                  "output": sp.output_len, "seed": sp.seed, "load": cfg.load.type.value,
                  "stages": [[s.rate, s.duration] for s in cfg.load.stages],
                  "streaming": cfg.api.streaming, "ignore_eos": cfg.server.ignore_eos}))
"""


def test_inference_perf_config_keeps_parameter_names(tmp_path: Path) -> None:
    spec = LoadSpec("http://h:1", "m", WL, arrival="poisson", rate=5, duration_s=12)
    cfg = inference_perf_config(spec, tmp_path / "tok", tmp_path / "rep")
    assert cfg["data"] == {
        "type": "shared_prefix",
        "shared_prefix": {
            "num_groups": 2,
            "num_prompts_per_group": 3,
            "system_prompt_len": 16,
            "question_len": 4,
            "output_len": 2,
            "seed": 9,
        },
    }
    assert cfg["load"]["type"] == "poisson"
    assert cfg["load"]["stages"] == [{"rate": 5, "duration": 12}]
    assert cfg["server"]["ignore_eos"] is True and cfg["api"]["streaming"] is True
    assert cfg["tokenizer"]["pretrained_model_name_or_path"] == str(tmp_path / "tok")
    with pytest.raises(ValueError, match="arrival"):
        inference_perf_config(LoadSpec("http://h:1", "m", WL), tmp_path, tmp_path)


@pytest.mark.skipif(not BENCH_PYTHON.exists(), reason=f"{BENCH_PYTHON} absent (peers.ensure_venv)")
def test_inference_perf_accepts_the_config(tmp_path: Path) -> None:
    spec = LoadSpec("http://h:1", "m", WL, arrival="constant", rate=2.5, duration_s=7)
    path = tmp_path / "inference-perf.yaml"
    path.write_text(yaml.safe_dump(inference_perf_config(spec, tmp_path / "tok", tmp_path / "r")))
    proc = subprocess.run(
        [str(BENCH_PYTHON), "-c", _VALIDATE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    parsed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert parsed == {
        "groups": 2,
        "per_group": 3,
        "system": 16,
        "question": 4,
        "output": 2,
        "seed": 9,
        "load": "constant",
        "stages": [[2.5, 7]],
        "streaming": True,
        "ignore_eos": True,
    }


def test_the_bench_venv_is_made_once_per_set_of_pins_and_linked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Path] = []

    def fake_ensure(venv: Path, python: str | None = None) -> Path:
        made.append(venv)
        (venv / "bin").mkdir(parents=True, exist_ok=True)
        return venv / "bin" / "inference-perf"

    monkeypatch.setattr(peers, "ensure_venv", fake_ensure)
    link = tmp_path / "clone" / ".venv-bench"
    link.parent.mkdir()
    peers.link_cached_venv(link, tmp_path / "cache")
    peers.link_cached_venv(link, tmp_path / "cache")  # a second clone's run: same venv
    cached = tmp_path / "cache" / "lamplighter" / "venvs" / "inference-perf-0.7.0-tokenizers-0.22.2"
    assert made == [cached, cached] and link.resolve() == cached
    real = tmp_path / "other" / ".venv-bench"
    (real / "bin").mkdir(parents=True)
    peers.link_cached_venv(real, tmp_path / "cache")
    assert made[-1] == real and not real.is_symlink()  # a venv made by hand is kept
