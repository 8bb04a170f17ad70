#!/bin/sh
# Makes a self-signed TLS certificate for local development: an EC P-256 key and a certificate
# for localhost and 127.0.0.1, valid 825 days (the longest lifetime Apple platforms accept).
#
# Usage: scripts/dev-cert.sh [DIR]     (DIR defaults to ./data/certs)
# Writes DIR/cert.pem and DIR/key.pem. Does nothing when both are already there, so it is safe to
# run on every start (docker-compose's one-shot `certs` service does). Delete them to make new ones.
#
# Never use this certificate in production: nothing but your own machine can trust it. To stop
# browser warnings, trust DIR/cert.pem on your machine, or use a tool such as mkcert instead.
set -eu

dir="${1:-./data/certs}"
cert="$dir/cert.pem"
key="$dir/key.pem"

if [ -s "$cert" ] && [ -s "$key" ]; then
  echo "dev-cert: $cert and $key already exist; leaving them as they are"
  exit 0
fi

if ! command -v openssl >/dev/null 2>&1; then
  echo "dev-cert: openssl is not installed (Debian/Ubuntu: apt-get install openssl; Alpine: apk add openssl)" >&2
  exit 1
fi

mkdir -p "$dir"
# The key is readable by its owner only.
umask 077
tmp_key="$key.tmp.$$"
tmp_cert="$cert.tmp.$$"
trap 'rm -f "$tmp_key" "$tmp_cert"' EXIT INT TERM

openssl req -x509 -new -nodes \
  -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -sha256 -days 825 \
  -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -addext "basicConstraints=critical,CA:FALSE" \
  -addext "keyUsage=critical,digitalSignature" \
  -addext "extendedKeyUsage=serverAuth" \
  -keyout "$tmp_key" -out "$tmp_cert" 2>/dev/null

chmod 600 "$tmp_key"
chmod 644 "$tmp_cert"
# Key first: a cert.pem never exists without its key.
mv "$tmp_key" "$key"
mv "$tmp_cert" "$cert"
trap - EXIT INT TERM
echo "dev-cert: wrote $cert and $key (self-signed, localhost and 127.0.0.1, 825 days)"
