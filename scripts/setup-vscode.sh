#!/usr/bin/env bash
# Installs what the extension's tests and `npm start` need, offline-capable (Debian apt + npm registry
# only, nothing from GitHub or a marketplace), idempotent and quick when already done:
#   - Debian's chromium (headless workbench for the extension host and the e2e test), ripgrep;
#   - code-server 4.100.3 (VS Code 1.100.3, the last that runs on Node 20) in .vscode-test/code-server,
#     a tool folder outside the project's node_modules (its postinstall builds native modules).
# Recipe: ../shared/vscode-host/ (README.md, setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

CODE_SERVER_VERSION=4.100.3
DEST=${OFFSITE_CODE_SERVER_DIR:-$PWD/.vscode-test/code-server}

PACKAGES=(chromium ripgrep libkrb5-dev python3 make g++)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "setup-vscode: installing ${missing[*]}" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

installed=$(node -p "try { require('$DEST/node_modules/code-server/package.json').version } catch { '' }" 2>/dev/null || true)
if [ "$installed" != "$CODE_SERVER_VERSION" ] || [ ! -f "$DEST/node_modules/code-server/lib/vscode/out/server-main.js" ]; then
  echo "setup-vscode: installing code-server $CODE_SERVER_VERSION into $DEST (about a minute)" >&2
  # @vscode/ripgrep's postinstall downloads rg from GitHub unless its cache already holds the archive:
  # pre-seed it with Debian's rg.
  cache=$(mktemp -d)
  trap 'rm -rf "$cache"' EXIT
  mkdir -p "$cache/vscode-ripgrep-cache-1.15.11"
  tar czf "$cache/vscode-ripgrep-cache-1.15.11/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C /usr/bin rg
  mkdir -p "$DEST"
  [ -f "$DEST/package.json" ] || echo '{"name":"offsite-vscode-host","private":true}' > "$DEST/package.json"
  # unsafe_perm: code-server's postinstall refuses to run as root without it. yes: node-pty's
  # postinstall runs `npx node-gyp`. nodedir: node-gyp must find Node's headers locally.
  (cd "$DEST" && TMPDIR="$cache" npm_config_unsafe_perm=true npm_config_yes=true \
    npm_config_nodedir="${npm_config_nodedir:-$(dirname "$(dirname "$(command -v node)")")}" \
    npm install --no-audit --no-fund --loglevel=error "code-server@$CODE_SERVER_VERSION")
fi
