#!/usr/bin/env bash
# Best effort: the system tools some tests use when present (Graphviz's `dot` renders diagrams to
# SVG/PNG; `docker-compose` validates docker/compose.yaml). Installed with apt-get when missing and
# this shell may; otherwise those tests fall back or skip with a message. Never fails the caller.
set -uo pipefail
missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
    missing+=(docker-compose)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; } \
        || echo "could not install ${missing[*]}: the tests that need them will skip"
else
    echo "not installing ${missing[*]} (needs root and apt-get): the tests that need them will skip"
fi
exit 0
