#!/usr/bin/env bash
# One-time set-up of a fresh Debian machine for Offsite (idempotent, quick when already done):
# the Debian packages the tests use (real gpg, duplicity, rdiff, OpenSSH, …), those `npm run bench`
# uses (restic, GNU time, and paramiko for duplicity's sftp://), make and g++ (ssh2 builds its native
# cipher binding at install), and the npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(make g++ gnupg duplicity rdiff openssh-server openssh-client python3 ca-certificates restic time python3-paramiko swift swift-proxy swift-account swift-container swift-object python3-swift memcached python3-boto3 rclone)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "setup: installing ${missing[*]}" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages: reinstall when package-lock.json is newer than the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# The extension tests' real VS Code (code-server) and headless Chromium.
scripts/setup-vscode.sh
