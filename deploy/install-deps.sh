#!/usr/bin/env bash
# Installs the Debian packages adsync needs that are missing, and says which.
# Used by deploy/run-local.sh, tests/run.sh and deploy/Dockerfile, so every
# way of building adsync installs the same things.
#
#   deploy/install-deps.sh [build|libs|runtime|test|postgres]...   (default: build)
#
# libs is only the shared libraries the three programs load (the container's
# runtime stage); runtime adds Redis and curl for a local run; test adds what
# the tests use (systemd for systemd-analyze, python3-yaml, prometheus-client).
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libuv1-dev libhiredis-dev libcurl4-openssl-dev
            libcjson-dev libmicrohttpd-dev libcmocka-dev libpq-dev libsodium-dev)
libs_pkgs=(libuv1 libhiredis0.14 libcurl4 libcjson1 libmicrohttpd12 libpq5 libsodium23 ca-certificates)
runtime_pkgs=("${libs_pkgs[@]}" redis-server redis-tools curl)
test_pkgs=(redis-server redis-tools python3 curl procps iproute2 python3-prometheus-client python3-yaml systemd
           postgresql    # tests/integration/test_pg_sink.py runs a throwaway server
           chromium chromium-driver python3-selenium     # tests/integration/test_web.py drives the console
           clang libclang-rt-14-dev)                      # tests/fuzz.sh (libFuzzer)
postgres_pkgs=(libpq-dev postgresql)

wanted=()
for set in "${@:-build}"; do
  case "$set" in
    build) wanted+=("${build_pkgs[@]}") ;;
    libs) wanted+=("${libs_pkgs[@]}") ;;
    runtime) wanted+=("${runtime_pkgs[@]}") ;;
    test) wanted+=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
    postgres) wanted+=("${postgres_pkgs[@]}") ;;
    *) echo "install-deps: unknown set '$set' (expected build, libs, runtime, test or postgres)" >&2; exit 64 ;;
  esac
done

missing=()
for p in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
