#!/usr/bin/env bash
# Install what the browser test tier needs that pip does not bring: Debian's Chromium (Playwright's own
# browser download does not work here; the playwright driver comes with requirements-dev.txt). Quiet,
# idempotent, and never fails: where Chromium cannot be installed the tier skips and says why.
#   usage: bash scripts/setup_browser.sh
set -uo pipefail
chromium=${NUMINA_CHROMIUM:-/usr/bin/chromium}
if [ -x "$chromium" ]; then exit 0; fi
if ! command -v apt-get >/dev/null; then
  echo "setup_browser: no apt-get; install Chromium at $chromium by hand (the browser tier skips)" >&2; exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "setup_browser: not root and no sudo; run: apt-get install -y chromium (the browser tier skips)" >&2; exit 0
  fi
fi
echo "setup_browser: installing chromium with apt-get (about a minute)" >&2
if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium; } >/tmp/setup_browser.log 2>&1; then
  echo "setup_browser: apt-get could not install chromium (log: /tmp/setup_browser.log); the browser tier skips" >&2
fi
exit 0
