#!/usr/bin/env bash
# Installs Debian packages for the test set-up (postgres.sh, chromium.sh):
#   scripts/apt_install.sh PACKAGE...
# The two test workers may both need a package at once, and the machine's own apt jobs may hold dpkg's
# lock: our installs take turns (flock), and apt-get waits up to 10 minutes for another apt's lock
# instead of failing at once.
set -euo pipefail
wait_for_lock=(-o DPkg::Lock::Timeout=600)
exec 9>/tmp/hpsearch-apt.lock
flock 9
apt-get "${wait_for_lock[@]}" update -qq
DEBIAN_FRONTEND=noninteractive apt-get "${wait_for_lock[@]}" install -y -qq "$@"
