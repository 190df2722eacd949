#!/usr/bin/env bash
# Vendor side: build a signed air-gapped bundle from a release build of this repository
# (npm ci && npm run build && npm prune --omit=dev, images built or pullable).
#
#   installer/bundle.sh --out ./enclave-bundle-0.1.0 --signing-key issuer.key.json
# Customers check it with `enclave bundle verify DIR` (or install.sh --offline DIR does).
set -euo pipefail
# shellcheck source=installer/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
run_installer bundle create "$@"
