#!/usr/bin/env bash
# bootstrap.sh — install everything isoworld needs to build, run and test.
#
# Idempotent and quick the second time: it asks dpkg what is already there and only
# calls apt-get when something is missing (`apt-get update` once, then
# `apt-get install -y`, never interactive). V8 comes from Debian bookworm's libnode108 /
# libnode-dev, which cannot be apt-installed next to the machine's Node.js package, so
# their two .deb files are fetched with `apt-get download` and unpacked with
# `dpkg-deb -x` into .deps/libnode (ignored by git); CMake finds V8 there.
#
# Usage: tools/bootstrap.sh [--e2e] [--browser]
#   --e2e      also install the npm packages the end-to-end tests drive the server with
#   --browser  also install Debian's chromium for the browser test
# Always: lodash for the player API (sim/js/package.json, into sim/js/node_modules), and
# the browser page's editor component (web/client/package.json, from the npm
# registry, into web/client/node_modules; the build copies it next to the page). Without
# npm the page still works, with a plain text area.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/.deps"
want_e2e=0
want_browser=0
for a in "$@"; do
  case "$a" in
    --e2e) want_e2e=1 ;;
    --browser) want_browser=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bootstrap: unknown option '$a' (see --help)" >&2; exit 2 ;;
  esac
done

export DEBIAN_FRONTEND=noninteractive
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

pkgs=(build-essential cmake pkg-config
      libuv1-dev libwebsockets-dev libwebsockets-evlib-uv
      liblmdb-dev lmdb-utils libcmocka-dev libjansson-dev libsodium-dev zlib1g-dev
      libicu72 libc-ares2 libnghttp2-14 libbrotli1 libssl3 zlib1g curl)
[ $want_browser = 1 ] && pkgs+=(chromium)

missing=()
for p in "${pkgs[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done

apt_updated=0
apt_update_once() {
  if [ $apt_updated = 0 ]; then
    echo "bootstrap: apt-get update"
    $sudo apt-get update -q >/dev/null
    apt_updated=1
  fi
}

if [ ${#missing[@]} -gt 0 ]; then
  apt_update_once
  echo "bootstrap: installing ${missing[*]}"
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# V8 from libnode108 / libnode-dev, unpacked beside the build.
if [ ! -f "$deps/libnode/.complete" ]; then
  rm -rf "$deps/libnode" "$deps/debs"
  mkdir -p "$deps/debs" "$deps/libnode"
  ( cd "$deps/debs"
    if ! apt-get download libnode108 libnode-dev >/dev/null 2>&1; then
      apt_update_once
      apt-get download libnode108 libnode-dev >/dev/null
    fi )
  for d in "$deps"/debs/*.deb; do dpkg-deb -x "$d" "$deps/libnode"; done
  test -f "$deps/libnode/usr/include/node/v8.h"
  ls "$deps"/libnode/usr/lib/*/libnode.so.108 >/dev/null
  touch "$deps/libnode/.complete"
  echo "bootstrap: V8 (libnode108) unpacked in .deps/libnode"
fi

# npm packages, installed once per change of a package.json or package-lock.json.
npm_install() { # dir
  local dir=$1 stamp="$1/node_modules/.isoworld-stamp" sum
  sum=$(cat "$dir/package.json" "$dir/package-lock.json" 2>/dev/null | sha256sum | cut -c1-16)
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ] && return 0
  echo "bootstrap: npm packages in ${dir#"$root"/}"
  ( cd "$dir"
    if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error
    else npm install --no-audit --no-fund --loglevel=error; fi ) || return 1
  echo "$sum" > "$stamp"
}

# The default world's player API embeds lodash 3.10.1 (the global `_` of Screeps players)
# into the startup snapshot: required to build.
if ! command -v npm >/dev/null 2>&1; then
  echo "bootstrap: npm (with Node.js) is needed to fetch lodash for the player API" >&2
  exit 1
fi
npm_install "$root/sim/js"

# The page's editor component (CodeMirror 5). Optional: without it the page has a text area.
if [ -f "$root/web/client/package.json" ]; then
  if ! command -v npm >/dev/null 2>&1 || ! npm_install "$root/web/client"; then
    echo "bootstrap: warning: the page's editor (CodeMirror) is not installed; the page uses a text area" >&2
  fi
fi

# npm packages the end-to-end tests use as real clients (ws, screeps-api, sockjs-client,
# playwright-core).
if [ $want_e2e = 1 ] && [ -f "$root/tests/e2e/package.json" ]; then
  npm_install "$root/tests/e2e"
fi
exit 0
