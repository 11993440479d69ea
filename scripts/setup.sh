#!/usr/bin/env bash
# One-command set-up: a virtual environment with curator and its dev extras, plus Debian's
# chromium for the browser test (skipped where apt-get is not available or not root).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium; the browser test will be skipped" >&2
fi
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[dev]"
python -c "import torchvision, curator; print('curator', curator.__version__, 'ready')"
