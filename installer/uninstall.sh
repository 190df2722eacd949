#!/usr/bin/env bash
# Enclave uninstall: removes containers and networks. Data volumes, secrets and TLS are kept
# unless --delete-data --yes (volumes) and --purge (install directory) are given.
#
#   sudo installer/uninstall.sh [--dir /opt/enclave] [--delete-data --yes [--purge]]
set -euo pipefail
# shellcheck source=installer/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
run_installer uninstall "$@"
