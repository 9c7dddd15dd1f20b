# bench/lib/nginx-upstream.sh - the fast upstream the gateway benchmarks measure against
# SPDX-License-Identifier: Apache-2.0
#
#   . bench/lib/procs.sh; . bench/lib/nginx-upstream.sh
#   nginx_upstream "$WORK/up" "$UP_PORT"
#
# One nginx worker on 127.0.0.1:PORT answering every POST /v1/chat/completions with the fixed
# chat.completion of bench/gateway/upstream.json over keep-alive. Its files live in DIR; its
# pid goes onto PIDS (procs.sh), so stop_pids ends it. NGINX may name the binary.
# nginx_conf DIR WORKERS CONNECTIONS MAIN HTTP: writes DIR/nginx.conf for an nginx whose files
# all stay in DIR, quiet (no access log) and keeping client connections open; MAIN goes into
# the main context, HTTP (servers, upstreams, more http settings) into the http block.
nginx_conf() {
    local dir="$1" user_line=""
    [ "$(id -u)" -ne 0 ] || user_line="user root;"
    mkdir -p "$dir/logs" "$dir/tmp"
    cat >"$dir/nginx.conf" <<CONF
$user_line
worker_processes $2;
$4
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections $3; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 1000000;
    $5
}
CONF
}

nginx_upstream() { # nginx_upstream DIR PORT
    local dir="$1" port="$2" body bin
    bin="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
    body="$(tr -d '\n' <"$(dirname "${BASH_SOURCE[0]}")/../gateway/upstream.json")"
    nginx_conf "$dir" 1 4096 "" "server {
        listen 127.0.0.1:$port;
        location = /v1/chat/completions {
            default_type application/json;
            return 200 '$body';
        }
    }"
    "$bin" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2>>"$dir/logs/stderr.log" &
    PIDS+=($!)
}
