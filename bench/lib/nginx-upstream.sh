# bench/lib/nginx-upstream.sh - the fast upstream the gateway benchmarks measure against
# SPDX-License-Identifier: Apache-2.0
#
#   . bench/lib/procs.sh; . bench/lib/nginx-upstream.sh
#   nginx_upstream "$WORK/up" "$UP_PORT"
#
# One nginx worker on 127.0.0.1:PORT answering every POST /v1/chat/completions over keep-alive
# with a fixed answer, JSON or SSE (upstream_server below). Its files live in DIR; its pid goes
# onto PIDS (procs.sh), so stop_pids ends it. NGINX may name the binary.
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

# upstream_server PORT: the upstream's server block. A POST /v1/chat/completions gets the fixed
# chat.completion of bench/gateway/upstream.json; one that says Accept: text/event-stream gets
# the fixed stream of bench/gateway/upstream-sse.txt (chat.completion.chunk events ending in
# `data: [DONE]`), sent whole with a Content-Length. Streamed requests are told apart by that
# header because nginx cannot look into a body before it answers; every proxy measured sends
# it upstream for them (nginx and floor2 pass the client's on, kt sets it for stream:true).
# nginx reads \n in a quoted string as a newline and takes no string above 4 KB, so the stream
# goes in two halves, split between events.
upstream_server() {
    local port="$1" here body half1 half2
    here="$(dirname "${BASH_SOURCE[0]}")/../gateway"
    body="$(tr -d '\n' <"$here/upstream.json")"
    half1="$(awk 'NR <= 16 { printf "%s\\n", $0 }' "$here/upstream-sse.txt")"
    half2="$(awk 'NR > 16 { printf "%s\\n", $0 }' "$here/upstream-sse.txt")"
    echo "server {
        listen 127.0.0.1:$port;
        location = /v1/chat/completions {
            if (\$http_accept ~* \"text/event-stream\") {
                rewrite ^ /sse last;
            }
            default_type application/json;
            return 200 '$body';
        }
        location = /sse {
            internal;
            default_type text/event-stream;
            add_header Cache-Control no-cache;
            set \$sse1 '$half1';
            set \$sse2 '$half2';
            return 200 \"\$sse1\$sse2\";
        }
    }"
}

nginx_upstream() { # nginx_upstream DIR PORT
    local dir="$1" port="$2" bin
    bin="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
    nginx_conf "$dir" 1 4096 "" "keepalive_timeout 60s;
    $(upstream_server "$port")"
    "$bin" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2>>"$dir/logs/stderr.log" &
    PIDS+=($!)
}
