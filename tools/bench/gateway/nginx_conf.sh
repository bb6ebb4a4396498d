#!/usr/bin/env bash
# Shared by the gateway benchmarks: writes an nginx configuration that
# answers every request with a fixed 200 "ok" (2 workers, no access log)
# under prefix directory $1 listening on 127.0.0.1:$2, and prints the
# command that starts it in the foreground.
set -euo pipefail
prefix="$1"
port="$2"
mkdir -p "$prefix/logs"
cat >"$prefix/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $prefix/body;
  proxy_temp_path $prefix/proxy;
  fastcgi_temp_path $prefix/fcgi;
  uwsgi_temp_path $prefix/uwsgi;
  scgi_temp_path $prefix/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    location / { default_type text/plain; return 200 "ok"; }
  }
}
CONF
echo "nginx -p $prefix -c $prefix/nginx.conf"
