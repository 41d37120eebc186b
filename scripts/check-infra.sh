#!/usr/bin/env bash
# Static security scan of the Azure templates (infra/*.bicep) and the Dockerfile with checkov.
# Any failed check fails the script; justified exceptions are `checkov:skip` comments in the
# templates themselves. Offline: --skip-download keeps checkov from calling Prisma Cloud.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=.venv-checkov/.requirements.sha256
want=$(sha256sum tests/requirements-infra.txt | cut -d' ' -f1)
if ! { [ -x .venv-checkov/bin/checkov ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
  python3 -m venv .venv-checkov
  .venv-checkov/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements-infra.txt
  echo "$want" > "$stamp"
fi

.venv-checkov/bin/checkov -d infra --framework bicep --compact --quiet --skip-download
.venv-checkov/bin/checkov -f Dockerfile --framework dockerfile --compact --quiet --skip-download
