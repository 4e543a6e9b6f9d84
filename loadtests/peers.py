"""Run inference-perf (the kubernetes-sigs benchmark) on the same workload, for comparison.

inference-perf needs Python >= 3.12 and a Hugging Face tokenizer for ``shared_prefix``. It
lives in its own virtualenv (default ``.venv-bench/``, created on first use; ``make
bench-venv`` links it to one cached per set of pins under ``~/.cache/lamplighter/venvs``) and
gets a local word-level tokenizer built with the ``tokenizers`` library: its vocabulary is every
3-letter lowercase word, so the text it generates has one token per word for it, for the
simulator's tokenizer and for this harness alike. Nothing is downloaded from the hub.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from loadtests.runconfig import LoadSpec

__all__ = [
    "DEFAULT_VENV",
    "PeerResult",
    "add_peer_arguments",
    "ensure_venv",
    "find_python312",
    "inference_perf_config",
    "link_cached_venv",
    "run_inference_perf",
    "write_word_tokenizer",
]

PACKAGES = ["inference-perf==0.7.0", "tokenizers==0.22.2"]  # pinned: the venv is cached by them

_TOKENIZER_SCRIPT = r"""
import itertools, json, string, sys
from pathlib import Path
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
vocab = {"[UNK]": 0}
for letters in itertools.product(string.ascii_lowercase, repeat=3):
    vocab["".join(letters)] = len(vocab)
tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
tok.pre_tokenizer = WhitespaceSplit()
tok.save(str(out / "tokenizer.json"))
(out / "tokenizer_config.json").write_text(json.dumps({
    "tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]",
    "model_max_length": 1000000, "clean_up_tokenization_spaces": False}))
"""


@dataclass
class PeerResult:
    ttft_s: dict[str, float]  # inference-perf's summary: mean, median, p90, ...
    requests: int
    summary: dict[str, Any]
    report_dir: Path
    exit_code: int


DEFAULT_VENV = Path(__file__).resolve().parents[1] / ".venv-bench"


def add_peer_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every benchmark that compares with inference-perf takes."""
    parser.add_argument("--bench-venv", type=Path, default=DEFAULT_VENV,
                        help="venv holding inference-perf (created on first use)")
    parser.add_argument("--python", help="Python >= 3.12 for the inference-perf venv")
    parser.add_argument("--skip-inference-perf", action="store_true",
                        help="measure lamplighter only")


def find_python312() -> str | None:
    """A Python >= 3.12 interpreter (PATH, then pyenv's versions folder)."""
    for name in ("python3.13", "python3.12"):
        path = shutil.which(name)
        if path and subprocess.run([path, "-V"], capture_output=True).returncode == 0:
            return path
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python3")))
    return pyenv[-1] if pyenv else None


def ensure_venv(venv: Path, python: str | None = None) -> Path:
    """The venv's ``inference-perf`` executable, creating the venv if needed."""
    exe = venv / "bin" / "inference-perf"
    if exe.exists():
        return exe
    python = python or find_python312()
    if python is None:
        raise RuntimeError("inference-perf needs Python >= 3.12; none found (give --python)")
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PACKAGES], check=True)
    return exe


def link_cached_venv(link: Path, cache_home: Path | None = None) -> Path:
    """``link`` -> a venv of the pinned ``PACKAGES`` under the user's cache, made once per
    set of pins (a fresh clone reuses it: 48 s saved per CI run). A real venv already at
    ``link`` is kept."""
    if link.exists() and not link.is_symlink():
        return ensure_venv(link)
    home = cache_home or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = home / "lamplighter" / "venvs" / "-".join(p.replace("==", "-") for p in PACKAGES)
    exe = ensure_venv(venv)
    if link.is_symlink():
        link.unlink()
    link.symlink_to(venv, target_is_directory=True)
    return exe


def write_word_tokenizer(venv: Path, out_dir: Path) -> Path:
    """Build the 3-letter-word tokenizer with the venv's ``tokenizers`` (no download)."""
    if not (out_dir / "tokenizer.json").exists():
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", _TOKENIZER_SCRIPT, str(out_dir)], check=True
        )
    return out_dir


def inference_perf_config(
    spec: LoadSpec,
    tokenizer_dir: Path,
    report_dir: Path,
    num_workers: int = 1,
    stages: list[dict[str, float]] | None = None,
) -> dict[str, Any]:
    """The inference-perf config equivalent to ``spec`` (shared_prefix, open loop)."""
    if spec.workload.type != "shared_prefix":
        raise ValueError("workload.type: only shared_prefix is mapped to inference-perf")
    if spec.arrival == "closed" or not spec.rate:
        raise ValueError("arrival: inference-perf comparison needs an open-loop rate")
    return {
        "api": {"type": "chat" if spec.api == "chat" else "completion", "streaming": spec.stream},
        "data": {
            "type": "shared_prefix",
            "shared_prefix": {**spec.workload.params, "seed": spec.workload.seed},
        },
        "load": {
            "type": "poisson" if spec.arrival == "poisson" else "constant",
            "stages": stages
            or [{"rate": spec.rate, "duration": max(1, round(spec.duration_s))}],
            "num_workers": num_workers,
        },
        "server": {
            "type": "vllm",
            "model_name": spec.model,
            "base_url": spec.base_url,
            "ignore_eos": spec.ignore_eos,
        },
        "tokenizer": {"pretrained_model_name_or_path": str(tokenizer_dir)},
        "report": {"request_lifecycle": {"summary": True, "per_stage": True, "per_request": False}},
        "storage": {"local_storage": {"path": str(report_dir)}},
    }


def run_inference_perf(
    exe: Path, config: dict[str, Any], work_dir: Path, timeout_s: float = 600
) -> PeerResult:
    """Run inference-perf with ``config`` and read its summary report."""
    work_dir.mkdir(parents=True, exist_ok=True)
    cfg = work_dir / "inference-perf.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with (work_dir / "inference-perf.log").open("wb") as log:
        proc = subprocess.run(
            [str(exe), "--config_file", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=work_dir,
            env=env,
            timeout=timeout_s,
        )
    report_dir = Path(config["storage"]["local_storage"]["path"])
    files = sorted(report_dir.rglob("summary_lifecycle_metrics.json"))
    if not files:
        raise RuntimeError(
            f"inference-perf wrote no summary (exit {proc.returncode}); "
            f"see {work_dir / 'inference-perf.log'}"
        )
    summary = json.loads(files[-1].read_text())
    successes = summary.get("successes", {})
    ttft = successes.get("latency", {}).get("time_to_first_token") or {}
    return PeerResult(ttft, int(successes.get("count", 0)), summary, report_dir, proc.returncode)
