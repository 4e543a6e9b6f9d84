from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from loadtests.workloads import (
    WorkloadError,
    fingerprint,
    generate,
    load_workload,
    workload_to_dict,
)

SP: dict[str, Any] = {
    "type": "shared_prefix",
    "seed": 7,
    "shared_prefix": {
        "num_groups": 3,
        "num_prompts_per_group": 4,
        "system_prompt_len": 32,
        "question_len": 8,
        "output_len": 5,
    },
}


def test_shared_prefix_shape_and_determinism() -> None:
    spec = load_workload(SP)
    reqs = generate(spec)
    assert len(reqs) == 12
    assert [r.index for r in reqs] == list(range(12))
    assert fingerprint(reqs) == fingerprint(generate(load_workload(SP)))
    other = generate(load_workload({**SP, "seed": 8}))
    assert fingerprint(other) != fingerprint(reqs)
    by_group: dict[str, set[str]] = {}
    for r in reqs:
        assert r.prompt is not None and r.max_tokens == 5
        words = r.prompt.split(" ")
        assert len(words) == 40 and all(len(w) == 3 and w.islower() for w in words)
        by_group.setdefault(r.group, set()).add(" ".join(words[:32]))
    assert all(len(prefixes) == 1 for prefixes in by_group.values())
    assert len({p for s in by_group.values() for p in s}) == 3
    # shuffled: not grouped in issue order
    assert [r.group for r in reqs] != sorted(r.group for r in reqs)


def test_chat_messages_and_roundtrip() -> None:
    spec = load_workload(SP)
    reqs = generate(spec, api="chat")
    assert reqs[0].messages is not None and reqs[0].prompt is None
    assert [m["role"] for m in reqs[0].messages] == ["system", "user"]
    assert load_workload(workload_to_dict(spec)) == spec


@pytest.mark.skipif(
    importlib.util.find_spec("simulator.tokenizer") is None,
    reason="simulator.tokenizer not in this tree",
)
def test_lengths_are_tokens_for_the_simulator_tokenizer() -> None:
    from simulator.tokenizer import count_tokens

    for r in generate(load_workload(SP)):
        assert r.prompt is not None
        assert count_tokens(r.prompt) == 40


def test_random_and_multi_turn() -> None:
    rnd = generate(
        load_workload(
            {
                "type": "random",
                "seed": 1,
                "random": {
                    "num_prompts": 20,
                    "input_distribution": {"mean": 50, "std": 10, "min": 20, "max": 80},
                    "output_len": 4,
                },
            }
        )
    )
    assert len(rnd) == 20
    assert all(20 <= len((r.prompt or "").split()) <= 80 for r in rnd)
    mt = generate(
        load_workload(
            {
                "type": "multi_turn",
                "seed": 1,
                "multi_turn": {
                    "num_conversations": 3,
                    "turns": 2,
                    "system_prompt_len": 8,
                    "question_len": 4,
                    "output_len": 3,
                },
            }
        ),
        api="chat",
    )
    assert len(mt) == 6
    first = {r.group: r for r in mt[:3]}
    for r in mt[3:]:  # a second turn repeats its first turn as prefix
        assert r.messages is not None and r.messages[:2] == first[r.group].messages
        assert [m["role"] for m in r.messages] == ["system", "user", "assistant", "user"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"type": "shared_prefx"}, "type"),
        (
            {**SP, "shared_prefix": {**SP["shared_prefix"], "num_group": 3}},
            "shared_prefix.num_group",
        ),
        (
            {**SP, "shared_prefix": {**SP["shared_prefix"], "question_len": "8"}},
            "shared_prefix.question_len",
        ),
        (
            {**SP, "shared_prefix": {**SP["shared_prefix"], "output_len": 0}},
            "shared_prefix.output_len",
        ),
        ({"type": "random", "random": {"input_len": 5}}, "random.output_len"),
        ({**SP, "sead": 1}, "sead"),
    ],
)
def test_errors_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(WorkloadError, match=field.replace(".", r"\.")):
        load_workload(data, "wl.yaml")


def test_file_error_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("type: random\nrandom: {input_len: 4, output_len: -1}\n")
    with pytest.raises(WorkloadError, match=r"bad\.yaml: random\.output_len"):
        load_workload(path)
