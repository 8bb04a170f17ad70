#!/bin/sh
# A self-signed development certificate: DIR/cert.pem and DIR/key.pem (DIR defaults to
# ./data/certs). Kept for the commands and docs that name it; scripts/dev-cert.ts makes the
# certificate (no openssl needed) and says what it is.
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
exec node --import "$root/node_modules/tsx/dist/loader.mjs" "$root/scripts/dev-cert.ts" "$@"
