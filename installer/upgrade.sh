#!/usr/bin/env bash
# Enclave upgrade: preflight -> backup -> load or pull images -> migrate -> start -> verify.
# Refuses to skip a required version stop (installer/required-stops.json) and prints the path.
#
#   sudo installer/upgrade.sh [--dir /opt/enclave] [--offline BUNDLE]
set -euo pipefail
# shellcheck source=installer/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
umask 022  # explicit modes: secrets 0600, the rest readable by the container users
run_installer upgrade "$@"
