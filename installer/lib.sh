#!/usr/bin/env bash
# Shared by the installer scripts: find Node.js and run the TypeScript installer logic.
# Sourced, not executed.

# The release root: the directory holding package.json (a checkout or a bundle's release/).
ENCLAVE_RELEASE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ENCLAVE_RELEASE_ROOT

die() {
  printf 'enclave-installer: %s\n' "$*" >&2
  exit 1
}

require_bash() {
  if [ "${BASH_VERSINFO[0]}" -lt 4 ]; then
    die "bash 4 or newer is required (this is ${BASH_VERSION})"
  fi
}

require_node() {
  command -v node >/dev/null 2>&1 || die "Node.js 20 or newer is required on this host (install the nodejs package, or the Node.js 20 LTS tarball)"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$major" -lt 20 ]; then
    die "Node.js $(node --version) is too old; install Node.js 20 or newer"
  fi
}

# run_installer <command> [args...]: the built installer, or its TypeScript sources when
# ENCLAVE_INSTALLER_FROM_SOURCE=1 (development and tests).
run_installer() {
  require_bash
  require_node
  local root="$ENCLAVE_RELEASE_ROOT"
  if [ "${ENCLAVE_INSTALLER_FROM_SOURCE:-0}" = "1" ]; then
    [ -f "$root/node_modules/tsx/package.json" ] || die "ENCLAVE_INSTALLER_FROM_SOURCE=1 needs the dev dependencies (npm ci)"
    exec node --import tsx "$root/installer/main.ts" "$@"
  fi
  [ -f "$root/dist/installer/main.js" ] || die "the installer is not built: run npm ci && npm run build in $root"
  exec node "$root/dist/installer/main.js" "$@"
}
