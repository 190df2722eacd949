#!/usr/bin/env bash
# Enclave installer. Thin wrapper: the logic (preflight, secrets, TLS, Keycloak realm, volumes,
# start) is TypeScript in installer/*.ts. Every option is a flag; it never prompts.
#
#   sudo installer/install.sh --hostname enclave.example.com [--dir /opt/enclave]
#   sudo installer/install.sh --offline /media/enclave-bundle-0.1.0 --hostname enclave.example.com
#   installer/install.sh --help
set -euo pipefail
# shellcheck source=installer/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
umask 022  # explicit modes: secrets 0600, the rest readable by the container users
run_installer install "$@"
