#!/usr/bin/env bash
# Builds Herald's example plug-ins (examples/plugins/<name>/) into WebAssembly components,
# target/plugins/<name>.wasm, for the WIT world `plugin` of wit/plugin.wit. Idempotent:
# - examples/plugins/node_modules: ComponentizeJS, pinned by examples/plugins/package-lock.json
#   (`npm ci`, redone when the lock file's SHA-256 changes);
# - ./.plugin-venv: componentize-py, pinned by examples/plugins/requirements.txt (redone when
#   its SHA-256 changes);
# - a component is rebuilt only when its sources, the WIT files, the tools' pins or this script
#   changed: target/plugins/<name>.wasm.stamp holds the SHA-256 it was built from.
# An example is JavaScript when it has plugin.js (built by examples/plugins/build.mjs), Python
# when it has app.py (a module `app` with a class `Handler`).
#
#   scripts/build-plugins.sh            # every example
#   scripts/build-plugins.sh quote echo # only these
set -euo pipefail
cd "$(dirname "$0")/.."

plugins=examples/plugins
out=target/plugins
venv=.plugin-venv

sha() { sha256sum | cut -d' ' -f1; }
now_ms() { date +%s%3N; }
size_mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
seconds() { awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; }

# The examples to build: the arguments, or every folder with a plugin.js or an app.py.
names=()
if [ $# -gt 0 ]; then
  names=("$@")
else
  for dir in "$plugins"/*/; do
    name=$(basename "$dir")
    if [ -f "$dir/plugin.js" ] || [ -f "$dir/app.py" ]; then names+=("$name"); fi
  done
fi
need_js=false
need_py=false
for name in "${names[@]}"; do
  if [ -f "$plugins/$name/plugin.js" ]; then need_js=true
  elif [ -f "$plugins/$name/app.py" ]; then need_py=true
  else echo "build-plugins: $plugins/$name has neither plugin.js nor app.py" >&2; exit 2
  fi
done

# The JavaScript tools, pinned by package-lock.json; Node.js itself from Debian's packages if
# the machine has none.
if $need_js; then
  if ! command -v node >/dev/null 2>&1; then
    echo "installing Node.js from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  fi
  node_stamp=$plugins/node_modules/.package-lock.sha256
  node_want=$(sha < "$plugins/package-lock.json")
  if ! { [ -f "$node_stamp" ] && [ "$(cat "$node_stamp")" = "$node_want" ]; }; then
    echo "installing ComponentizeJS (npm ci in $plugins)" >&2
    npm ci --silent --no-audit --no-fund --prefix "$plugins"
    echo "$node_want" > "$node_stamp"
  fi
fi

# componentize-py, pinned by requirements.txt, in its own virtual environment.
if $need_py; then
  py_stamp=$venv/.requirements.sha256
  py_want=$(sha < "$plugins/requirements.txt")
  if ! { [ -x "$venv/bin/componentize-py" ] && [ -f "$py_stamp" ] && [ "$(cat "$py_stamp")" = "$py_want" ]; }; then
    echo "installing componentize-py (in $venv)" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$plugins/requirements.txt"
    echo "$py_want" > "$py_stamp"
  fi
fi

# What every component depends on besides its own sources: the WIT files, the tools' pins, the
# JavaScript build script (its engine features) and this script (the componentize-py flags).
common=$(
  find wit -type f -print0 | sort -z | xargs -0 sha256sum
  sha256sum "$plugins/package-lock.json" "$plugins/build.mjs" "$plugins/requirements.txt" \
    scripts/build-plugins.sh
)
# The SHA-256 a component is built from.
fingerprint() {
  {
    echo "$common"
    (cd "$plugins/$1" && find . -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
      | sort -z | xargs -0 sha256sum)
  } | sha
}

mkdir -p "$out"
started=$(now_ms)
stage=
trap '[ -z "$stage" ] || rm -rf "$stage"' EXIT
js_args=()
declare -A want
for name in "${names[@]}"; do
  want[$name]=$(fingerprint "$name")
  stamp=$out/$name.wasm.stamp
  if [ -f "$out/$name.wasm" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${want[$name]}" ]; then
    printf '%-10s %-6s %9s  up to date\n' "$name" "$([ -f "$plugins/$name/plugin.js" ] && echo js || echo python)" "$(size_mib "$out/$name.wasm")"
    continue
  fi
  rm -f "$stamp"
  if [ -f "$plugins/$name/plugin.js" ]; then
    js_args+=("$plugins/$name/plugin.js" "$out/$name.wasm")
  else
    # componentize-py reads the app from a copy, so that no __pycache__ lands in the sources.
    stage=$(mktemp -d)
    cp -R "$plugins/$name/." "$stage/"
    t0=$(now_ms)
    "$venv/bin/componentize-py" -q -d wit -w plugin componentize -p "$stage" app -o "$out/$name.wasm.tmp"
    rm -rf "$stage"
    stage=
    mv "$out/$name.wasm.tmp" "$out/$name.wasm"
    echo "${want[$name]}" > "$stamp"
    printf '%-10s %-6s %9s  built in %s\n' "$name" python "$(size_mib "$out/$name.wasm")" "$(seconds $(( $(now_ms) - t0 )))"
  fi
done

# The JavaScript components, in one Node.js process (ComponentizeJS loads once).
if [ ${#js_args[@]} -gt 0 ]; then
  while IFS= read -r line; do
    # build.mjs answers "built <file> <bytes> <ms>" per component; other lines pass through.
    case $line in
      "built "*) read -r _ file _ ms <<< "$line" ;;
      *) printf '%s\n' "$line"; continue ;;
    esac
    name=$(basename "$file" .wasm)
    echo "${want[$name]}" > "$file.stamp"
    printf '%-10s %-6s %9s  built in %s\n' "$name" js "$(size_mib "$file")" "$(seconds "$ms")"
  done < <(node "$plugins/build.mjs" "${js_args[@]}")
  wait $! # the build's exit status
fi
echo "plug-ins in $out/ ($(seconds $(( $(now_ms) - started ))))"
