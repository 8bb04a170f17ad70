#!/bin/sh
# Writes .env for docker-compose.yml: .env.example with a new random value for each empty secret
# (SESSION_SECRET, INTERNAL_TOKEN, SESSION_ENCRYPTION_KEY). Run from anywhere:
#
#   sh scripts/compose-env.sh
#
# An existing .env is left as it is (delete it to make a new one; the sessions sealed with the
# old SESSION_ENCRYPTION_KEY then end). Needs only a POSIX shell, head, base64 and tr.
set -eu
cd "$(dirname "$0")/.."

if [ -e .env ]; then
  echo "compose-env: .env already exists; leaving it as it is"
  exit 0
fi

# 48 random bytes, base64 without + / = : 60-odd letters and digits, safe in any config syntax.
secret() { head -c 48 /dev/urandom | base64 | tr -d '\n+/='; }

umask 077
tmp=".env.tmp.$$"
trap 'rm -f "$tmp"' EXIT INT TERM
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in
    SESSION_SECRET= | INTERNAL_TOKEN= | SESSION_ENCRYPTION_KEY=) printf '%s%s\n' "$line" "$(secret)" ;;
    *) printf '%s\n' "$line" ;;
  esac
done < .env.example > "$tmp"
mv "$tmp" .env
trap - EXIT INT TERM
echo "compose-env: wrote .env with new secrets (readable by you only; never commit it)"
