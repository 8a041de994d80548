#!/usr/bin/env bash
# The system packages the tests use, from Debian: the PostgreSQL and MariaDB servers the engine tests start
# (tests/servers.py; not started or enabled as services: the tests start private instances on free loopback ports),
# Chromium, the browser the web page's test drives (tests/test_webapp.py), and jemalloc, the allocator the full CPU
# training recipes run with (scripts/with_jemalloc.sh). Run by `make install`. Installs only what is missing; needs
# root or sudo for apt-get.
set -euo pipefail

missing=()
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
if ! command -v mariadbd >/dev/null 2>&1 && ! [ -x /usr/sbin/mariadbd ]; then
    missing+=(mariadb-server)
fi
if ! [ -x /usr/bin/chromium ]; then
    missing+=(chromium)
fi
if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libjemalloc\.so\.2 '; then
    missing+=(libjemalloc2)
fi
if [ ${#missing[@]} -eq 0 ]; then
    echo "install_system_packages: PostgreSQL, MariaDB, Chromium and jemalloc are installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_system_packages: ${missing[*]} missing and no apt-get here: install PostgreSQL, MariaDB (or MySQL)," \
         "Chromium and jemalloc with your package manager, or deselect their tests with:" \
         "pytest -m 'not servers and not browser and not jemalloc'" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "install_system_packages: installing ${missing[*]} (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
# A policy-rc.d for the install keeps the packages from starting system services (there may be no init system at all);
# one the machine already has is left as it is, and ours is removed afterwards.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    $sudo sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
