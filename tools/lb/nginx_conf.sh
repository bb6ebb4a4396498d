#!/usr/bin/env bash
# tools/lb/nginx_conf.sh - the nginx configuration of the local load balancer
# in front of several gateway (or realtime) replicas, as an ingress would
# be: `tools/dev up --replicas` (tools/dev_replicas.sh) and the failover
# integration test (tests/failover) both use it, so the test proves the
# configuration developers run.
#
#   tools/lb/nginx_conf.sh DIR LOG NAME:LISTEN_PORT:PORT,PORT,... [NAME:...] >nginx.conf
#
# DIR holds nginx's pid and temporary files, LOG its error log; each
# NAME:LISTEN:PORTS is one upstream of replicas on 127.0.0.1:PORT and the
# server that listens on 127.0.0.1:LISTEN in front of them.
#
# What is sent again to another replica (docs/adr/0013, "Addendum: the
# load balancer"):
#   - any request that could not be sent (connection refused or reset
#     before the request went out: `proxy_next_upstream error`; for POST
#     and PATCH nginx does this only while the request was not sent);
#     GET, HEAD, PUT, DELETE and OPTIONS also after it was, as nginx
#     treats them as idempotent (our PUT and DELETE are: the same call
#     twice leaves the same state);
#   - a POST that carries the client's Idempotency-Key, also when it may
#     have reached the replica that died (`error_page 502` to a location
#     with `non_idempotent`): every POST route honours the key, so the
#     repeat meets the first one's answer instead of creating twice. The
#     repeat carries `X-Lb-Retry: 1` (a client's own is dropped), so the
#     gateway waits for the first one if it is still running behind the
#     dead gateway instead of answering 409.
# A POST without the client's key is not repeated once sent: the gateway
# would give the repeat a key of its own, so a second order could be made.
# No replica is ever marked down (max_fails=0): with passive health
# checks (max_fails=1 fail_timeout=2s, as before) a replica killed and
# restarted stayed marked in some worker, and when the other one died
# next every request met "no live upstreams" (502) until the mark timed
# out. On one host a dead replica refuses the connection at once, so
# trying it costs a request microseconds before the next replica.
set -euo pipefail
[[ $# -ge 3 ]] || { echo "usage: $0 DIR LOG NAME:LISTEN:PORT,PORT,... ..." >&2; exit 2; }
dir="$1" log="$2"
shift 2

upstream() { # name ports
  local p
  echo "  upstream $1 {"
  IFS=, read -r -a ports <<<"$2"
  for p in "${ports[@]}"; do
    echo "    server 127.0.0.1:$p max_fails=0;"
  done
  echo "    keepalive 32;"
  echo "  }"
}

# The headers sent upstream; lb_retry "" drops a client's X-Lb-Retry, "1"
# marks the load balancer's own repeat (a location that sets any header
# inherits none, so every location sets them all).
headers() { # lb_retry
  cat <<EOF
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$conn_upgrade;
      proxy_set_header X-Lb-Retry "$1";
EOF
}

server() { # name listen
  cat <<EOF
  server {
    listen 127.0.0.1:$2;
    proxy_http_version 1.1;
    proxy_read_timeout 1h;
    proxy_buffering off;
    proxy_next_upstream_tries 3;
    location / {
      proxy_pass http://$1;
$(headers "")
      proxy_next_upstream error;
      error_page 502 = @keyed_$1;
    }
    # Only a POST with the client's Idempotency-Key gets here and on; the
    # gateway then waits for a twin still running at the dead gateway's
    # backend instead of answering 409 (X-Lb-Retry).
    location @keyed_$1 {
      if (\$lb_keyed_retry = 0) { return 502; }
      proxy_pass http://$1;
$(headers 1)
      proxy_next_upstream error non_idempotent;
    }
  }
EOF
}

[[ "$(id -u)" == 0 ]] && echo "user root;"
cat <<EOF
worker_processes 2;
daemon off;
pid $dir/nginx.pid;
error_log $log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_max_body_size 64m;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  map \$http_upgrade \$conn_upgrade { default upgrade; '' ''; }
  map "\$request_method:\$http_idempotency_key" \$lb_keyed_retry {
    default 0;
    "~^POST:." 1;
  }
EOF
for spec in "$@"; do
  IFS=: read -r name listen ports <<<"$spec"
  [[ "$name" =~ ^[a-z]+$ && "$listen" =~ ^[0-9]+$ && "$ports" =~ ^[0-9,]+$ ]] ||
    { echo "$0: bad upstream '$spec'" >&2; exit 2; }
  upstream "$name" "$ports"
  server "$name" "$listen"
done
echo "}"
