#!/usr/bin/env bash
# The checkout's browser tests drive Debian's Chromium (tests/support/browser.py).
# Installed here where it can be (root with apt-get); elsewhere this says what to
# install and succeeds, and the browser tests then fail naming the package: they
# never skip.
set -euo pipefail
if [ -n "${PAYMESH_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser tests (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  exit 0
fi
echo "note: the browser tests need Chromium; install Debian's package 'chromium' (or set PAYMESH_CHROMIUM)" >&2
