#!/usr/bin/env bash
# Installs and starts what the tests need, idempotently:
# - ./.venv with the Python packages of tests/requirements.txt (official Azure SDKs,
#   the Standard Webhooks verifier, jsonschema, schemathesis);
# - local-emulator/tests/node/node_modules with the official JavaScript Service Bus SDK;
# - Debian's chromium and tests/browser/node_modules (playwright-core, axe-core) for the
#   console's browser tests;
# - a PostgreSQL server on 127.0.0.1:5432 with database `test` (trust auth), started if it is
#   installed but stopped, installed from Debian's packages if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

stamp=.venv/.requirements.sha256
want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if ! { [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  echo "$want" > "$stamp"
fi

# Node.js packages for the emulator's JavaScript SDK tests (local-emulator/tests/node), pinned by
# its package-lock.json; Node.js itself from Debian's packages if the machine has none.
if ! command -v node >/dev/null 2>&1; then
  echo "installing Node.js from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
node_dir=local-emulator/tests/node
node_stamp=$node_dir/node_modules/.package-lock.sha256
node_want=$(sha256sum "$node_dir/package-lock.json" | cut -d' ' -f1)
if ! { [ -f "$node_stamp" ] && [ "$(cat "$node_stamp")" = "$node_want" ]; }; then
  npm ci --silent --no-audit --no-fund --prefix "$node_dir"
  echo "$node_want" > "$node_stamp"
fi

# The console's browser tests (tests/browser): Debian's chromium, driven by playwright-core,
# with axe-core for accessibility, pinned by tests/browser/package-lock.json. Playwright never
# downloads a browser of its own: it drives /usr/bin/chromium.
if ! [ -x /usr/bin/chromium ]; then
  echo "installing chromium from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
browser_dir=tests/browser
browser_stamp=$browser_dir/node_modules/.package-lock.sha256
browser_want=$(sha256sum "$browser_dir/package-lock.json" | cut -d' ' -f1)
if ! { [ -f "$browser_stamp" ] && [ "$(cat "$browser_stamp")" = "$browser_want" ]; }; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --silent --no-audit --no-fund --prefix "$browser_dir"
  echo "$browser_want" > "$browser_stamp"
fi

# PostgreSQL for the store contract and cluster tests (HERALD_TEST_PG overrides the URL).
if [ -z "${HERALD_TEST_PG:-}" ]; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
      echo "installing PostgreSQL from Debian's packages" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
      ver=$(ls /etc/postgresql | head -n1)
      sed -i 's/^\(host\s\+all\s\+all\s\+127.0.0.1\/32\s\+\)\S\+/\1trust/; s/^\(local\s\+all\s\+all\s\+\)\S\+/\1trust/' "/etc/postgresql/$ver/main/pg_hba.conf"
    fi
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null
  fi
  # Each test makes a schema t_<uuid>; drop those of earlier runs.
  psql -h 127.0.0.1 -U postgres -d test -tAc \
    "SELECT format('DROP SCHEMA %I CASCADE;', nspname) FROM pg_namespace WHERE nspname LIKE 't\_%'" \
    | PGOPTIONS="-c client_min_messages=warning" psql -q -h 127.0.0.1 -U postgres -d test >/dev/null
fi
