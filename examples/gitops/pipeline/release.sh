#!/usr/bin/env bash
# Release a new version of ui through git, then block until the canary release ends.
#
#   ./release.sh v3            # bump, commit, push, wait (30m)
#
# Needs: git (a clone of the GitOps repository, allowed to push), yq (mikefarah/yq v4) or sed,
# kubectl with the canary plugin (`pip install canary` puts kubectl-canary on PATH) and a
# kubeconfig that may read Rollouts in the shop namespace.
#
# Exit codes (those of `kubectl canary wait`):
#   0 released   1 rolled back / aborted / superseded / invalid   2 timed out
#   3 paused for promotion   4 no such Rollout
set -euo pipefail

version="${1:?usage: release.sh VERSION (e.g. v3)}"
rollout_file="${ROLLOUT_FILE:-examples/ui/rollout.yaml}"
namespace="${NAMESPACE:-shop}"
timeout="${TIMEOUT:-30m}"

if command -v yq >/dev/null 2>&1; then
  yq -i ".spec.canary.version = \"${version}\"" "${rollout_file}"
else
  # the `version:` line inside `canary:`; the only one indented this way in the example
  sed -i -E "/^  canary:/,/^  [a-z]/ s/^(    version: ).*/\1${version}/" "${rollout_file}"
fi

git add "${rollout_file}"
git commit -m "ui: release ${version}"
git push

set +e
kubectl canary wait ui -n "${namespace}" --version "${version}" --timeout "${timeout}"
code=$?
set -e

case "${code}" in
  0) echo "ui ${version} is live" ;;
  1) echo "ui ${version} was rolled back, aborted or superseded (see: kubectl canary get ui -n ${namespace})" >&2 ;;
  2) echo "ui ${version} did not finish within ${timeout}; it is still running" >&2 ;;
  3) echo "ui ${version} waits for a person: kubectl canary promote ui -n ${namespace}" >&2 ;;
  4) echo "there is no Rollout ui in namespace ${namespace}: has the GitOps sync applied it?" >&2 ;;
  *) echo "kubectl canary wait failed (${code}): check the kubeconfig and the plugin" >&2 ;;
esac
exit "${code}"
