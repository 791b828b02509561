#!/bin/sh
# Make a self-signed certificate for local TLS: tls.crt and tls.key in the given directory.
# Usage: nginx/make-self-signed-cert.sh [DIR] [HOSTNAME]   (defaults: var/certs localhost)
# Not for production: browsers and clients will not trust it (curl -k / --cacert DIR/tls.crt).
set -eu

dir=${1:-var/certs}
host=${2:-localhost}

command -v openssl >/dev/null 2>&1 || { echo "openssl is required" >&2; exit 1; }
mkdir -p "$dir"

# The key is created unreadable to others; in compose the nginx user (uid 101) must read it,
# so hand it over there with: chown 101 "$dir/tls.key" (or mount a copy owned by 101).
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 365 \
    -keyout "$dir/tls.key" -out "$dir/tls.crt" \
    -subj "/CN=$host" \
    -addext "subjectAltName=DNS:$host,DNS:localhost,IP:127.0.0.1" \
    >/dev/null 2>&1
chmod 644 "$dir/tls.crt"

echo "wrote $dir/tls.crt and $dir/tls.key (CN=$host, 365 days)"
