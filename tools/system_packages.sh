#!/usr/bin/env bash
# System packages the test suite needs beyond Python. `make test` runs this first.
# As root, installs whatever is missing with apt-get (one `need` line per package); as any other
# user, or without apt-get, it only reports what is missing and leaves the decision to you.
# Add a line for a new need: `need <command or path that proves it is there> <debian package>`.
set -euo pipefail

missing=()
need() {  # need CHECK PACKAGE: CHECK is a command on PATH or a glob of a file
    local check=$1 package=$2
    if command -v "$check" >/dev/null 2>&1 || compgen -G "$check" >/dev/null; then
        return
    fi
    missing+=("$package")
}

# A throwaway PostgreSQL server for tests/test_audit.py (initdb + postgres binaries).
need "/usr/lib/postgresql/*/bin/initdb" postgresql

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "tools/system_packages.sh: missing system packages: ${missing[*]}" >&2
    echo "  install them (sudo apt-get install -y ${missing[*]}); tests needing them skip locally" >&2
    exit 0
fi
echo "tools/system_packages.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
