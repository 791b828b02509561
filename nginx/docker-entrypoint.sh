#!/bin/sh
# Render the tractcast nginx config into $NGINX_RUN_DIR and run nginx in the foreground.
# Only the listed names are substituted: nginx's own $variables must reach nginx untouched.
set -eu

: "${NGINX_RUN_DIR:=/tmp/nginx}"
: "${TEMPLATE_DIR:=/etc/nginx/tractcast}"
export NGINX_RUN_DIR

mkdir -p "$NGINX_RUN_DIR/conf.d"
rm -f "$NGINX_RUN_DIR"/conf.d/*.conf

envsubst '${NGINX_PORT} ${API_UPSTREAM} ${GEO_UPSTREAM} ${REGISTRY_UPSTREAM} ${RETRAINER_UPSTREAM} ${NGINX_RUN_DIR} ${RATE_LIMIT} ${ADMIN_RATE_LIMIT} ${WEB_ROOT}' \
    < "$TEMPLATE_DIR/nginx.conf.template" > "$NGINX_RUN_DIR/nginx.conf"

if [ -n "${TLS_CERT:-}" ] && [ -r "$TLS_CERT" ] && [ -n "${TLS_KEY:-}" ] && [ -r "$TLS_KEY" ]; then
    envsubst '${TLS_PORT} ${TLS_CERT} ${TLS_KEY}' \
        < "$TEMPLATE_DIR/tls.conf.template" > "$NGINX_RUN_DIR/conf.d/tls.conf"
    echo "tractcast-nginx: TLS on :${TLS_PORT}" >&2
elif [ -e "${TLS_CERT:-/nonexistent}" ] || [ -e "${TLS_KEY:-/nonexistent}" ]; then
    echo "tractcast-nginx: $TLS_CERT or $TLS_KEY exists but is not readable by $(id -u); TLS off" >&2
fi

# Logs go to the container's output; the config names files so a local run keeps them on disk.
ln -sf /dev/stdout "$NGINX_RUN_DIR/access.log"
ln -sf /dev/stderr "$NGINX_RUN_DIR/error.log"

exec nginx -p "$NGINX_RUN_DIR/" -c "$NGINX_RUN_DIR/nginx.conf" -e stderr -g 'daemon off;' "$@"
