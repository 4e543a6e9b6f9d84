#!/usr/bin/env bash
# The llm-d/llm-d commit a guide version's profile was taken from (fixtures/profiles/<v>.yaml,
# `llm_d_ref:`), so CI installs the guide the profile describes and never `main`.
set -euo pipefail
version="${1:?usage: ci/llm-d-ref.sh <guide version, e.g. v0.3>}"
profile="$(dirname "$0")/../fixtures/profiles/${version}.yaml"
[[ -f "$profile" ]] || { echo "no guide profile $profile" >&2; exit 2; }
sha="$(sed -n 's/^llm_d_ref: *\([0-9a-f]\{40\}\).*/\1/p' "$profile")"
[[ -n "$sha" ]] || { echo "$profile: llm_d_ref: missing or not a 40-hex commit" >&2; exit 2; }
echo "$sha"
