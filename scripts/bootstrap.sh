#!/usr/bin/env bash
# Install everything uniflow needs on a fresh Debian/Ubuntu machine: system packages, then a venv.
# Idempotent: skips what is already there. Used by `make demo` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(espeak-ng flite sox ffmpeg zip pocketsphinx-testdata alsa-utils chromium-headless-shell tesseract-ocr)
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
  .venv/bin/pip install -q -U pip
fi
echo "bootstrap: installing uniflow and its pinned dependencies into .venv (first time: a few minutes)"
# pip, not uv/poetry: only pip honours this machine's wheel cache and torch pins.
.venv/bin/pip install -q -e '.[dev,youtube]'
touch .venv/.installed
