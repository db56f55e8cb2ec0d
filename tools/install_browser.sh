#!/usr/bin/env bash
# Install the browser that tests/test_browser.py drives: Debian's `chromium` package.
# Playwright's own browser download is never used (no network outside package registries);
# the test points Playwright at this binary with executable_path.
set -euo pipefail
BROWSER=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$BROWSER" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "error: $BROWSER is missing; install it as root: apt-get install -y chromium" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "error: $BROWSER is missing and apt-get is not available; install Chromium and set CHROMIUM=/path/to/it" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
test -x "$BROWSER" || { echo "error: apt-get installed chromium but $BROWSER is not there" >&2; exit 1; }
echo "installed $("$BROWSER" --version)"
