#!/bin/sh
# Installs the Debian packages digitnet needs to build, test and benchmark. Run as root it installs
# what is missing; otherwise it prints the exact apt-get line to run.
set -e
PKGS="gcc make pkg-config libopenblas-dev zlib1g-dev libcjson-dev libpng-dev libjpeg-dev libcairo2-dev
libmicrohttpd-dev libcmocka-dev python3
xxd curl chromium"
# `install-deps.sh bench` adds what make bench needs: the full 60k Fashion-MNIST and PyTorch to compare.
[ "$1" = bench ] && PKGS="$PKGS dataset-fashion-mnist python3-torch"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "digitnet: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    apt-get install -y -qq $missing >/dev/null
else
    echo "digitnet: missing Debian packages; run:" >&2
    echo "  sudo apt-get install -y$missing" >&2
    exit 1
fi
