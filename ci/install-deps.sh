#!/usr/bin/env bash
# Pinned client tools for the guide installs, as llm-d's guides/prereq/client-setup/install-deps.sh:
# Helm 3 (helm-diff does not install under Helm 4 without --verify=false, and helmfile before
# 1.2 has no Helm 4 support), helm-diff (helmfile apply runs helm diff), helmfile.
# Installs into $1 (default $RUNNER_TEMP/bin) and adds it to $GITHUB_PATH when set.
set -euo pipefail

HELM_VERSION=v3.17.3
HELM_DIFF_VERSION=v3.11.0
HELMFILE_VERSION=1.1.3

bin_dir="${1:-${RUNNER_TEMP:-/tmp}/bin}"
mkdir -p "$bin_dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

curl -fsSL "https://get.helm.sh/helm-${HELM_VERSION}-linux-amd64.tar.gz" | tar xz -C "$tmp"
install -m 0755 "$tmp/linux-amd64/helm" "$bin_dir/helm"
curl -fsSL "https://github.com/helmfile/helmfile/releases/download/v${HELMFILE_VERSION}/helmfile_${HELMFILE_VERSION}_linux_amd64.tar.gz" \
  | tar xz -C "$tmp" helmfile
install -m 0755 "$tmp/helmfile" "$bin_dir/helmfile"
export PATH="$bin_dir:$PATH"
if ! helm plugin list | grep -q '^diff[[:space:]]'; then
  helm plugin install https://github.com/databus23/helm-diff --version "$HELM_DIFF_VERSION"
fi
if [[ -n "${GITHUB_PATH:-}" ]]; then
  echo "$bin_dir" >> "$GITHUB_PATH"
fi
helm version --short
helmfile --version
