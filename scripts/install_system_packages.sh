#!/usr/bin/env bash
# The database servers the engine tests start (tests/servers.py): PostgreSQL and MariaDB from Debian's packages.
# Run by `make install`. Installs only what is missing; needs root or sudo for apt-get. The servers are not started
# or enabled as services: the tests start private instances on free loopback ports and stop them.
set -euo pipefail

missing=()
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
if ! command -v mariadbd >/dev/null 2>&1 && ! [ -x /usr/sbin/mariadbd ]; then
    missing+=(mariadb-server)
fi
if [ ${#missing[@]} -eq 0 ]; then
    echo "install_servers: PostgreSQL and MariaDB are installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_servers: ${missing[*]} missing and no apt-get here: install PostgreSQL and MariaDB (or MySQL) with" \
         "your package manager, or deselect their tests with: pytest -m 'not servers'" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "install_servers: installing ${missing[*]} (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
# A policy-rc.d for the install keeps the packages from starting system services (there may be no init system at all);
# one the machine already has is left as it is, and ours is removed afterwards.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    $sudo sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
