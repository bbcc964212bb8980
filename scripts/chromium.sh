#!/usr/bin/env bash
# Debian's chromium for the dashboard's browser tests (Playwright drives it through executable_path;
# `playwright install` would download a browser build of its own, which this project does not rely on).
#   scripts/chromium.sh   -> prints the path of the chromium executable, installing it when absent
# Installing needs root and Debian's package registry.
set -euo pipefail

find_chromium() {
  for candidate in /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

if ! path=$(find_chromium); then
  echo "installing chromium from Debian's packages" >&2
  bash "$(dirname "$0")/apt_install.sh" chromium >&2
  path=$(find_chromium) || { echo "chromium is not installed and could not be installed" >&2; exit 1; }
fi
echo "$path"
