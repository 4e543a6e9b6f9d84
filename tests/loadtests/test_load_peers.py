from __future__ import annotations

from pathlib import Path

import pytest

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
