# tools/dev_replicas.sh - replicas for `tools/dev up --replicas ...`,
# sourced by tools/dev (not run on its own).
#
# `--replicas N` runs every service in N processes; `--replicas
# orders=3,realtime=2` chooses per service (a bare N sets the rest; both
# may be mixed: "2,orders=3"). At most DEV_MAX_REPLICAS (5) each. The
# choice is kept in .run/replicas ("<service> <count>" lines) for the
# other commands; without --replicas every service has one replica and
# tools/dev behaves as it always has.
#
# Ports. Replica 0 keeps the service's SERVICE_PORTS row (+ the checkout's
# offset); replica k (1..4) uses each of those ports + 10000*k, so the
# ranges of replicas never meet each other's or another checkout's.
# Every client and subscriber is given the full lists (ORDERS_ADDR =
# "tcp://127.0.0.1:7103,tcp://127.0.0.1:17103,..."; the same for *_EVENTS
# and AUTH_BUS_SUBSCRIBE): libs/rpc and libs/bus dial every replica.
#
# Load balancer. With more than one gateway (or realtime) replica, nginx
# stands in front of them as an ingress would: it listens on the
# gateway's HTTP port (realtime's WebSocket port), so `tools/dev url` and
# clients see one address, and the replicas listen on that port +
# 10000*(k+1). Its configuration is tools/lb/nginx_conf.sh's (what it sends
# again to another replica, and why: a request that could not be sent, an
# idempotent method, a POST with the client's Idempotency-Key; a replica
# that failed is out for 2 s). Configuration and logs are under .run/lb/.

DEV_MAX_REPLICAS=5
DEV_REPLICA_STEP=10000

# Parses a --replicas value into .run/replicas.new; dies on a bad one.
parse_replicas() { # spec
  local spec="$1" item name n def=1 row out=()
  [[ "$spec" =~ ^[a-z0-9=,]+$ ]] || die "--replicas: expected N or service=N,... (got '$spec')"
  local -A want=()
  IFS=, read -r -a items <<<"$spec"
  for item in "${items[@]}"; do
    if [[ "$item" =~ ^[0-9]+$ ]]; then
      def="$item"
    elif [[ "$item" =~ ^([a-z]+)=([0-9]+)$ ]]; then
      name="${BASH_REMATCH[1]}"
      [[ -n "$(service_port "$name" 2)" ]] || die "--replicas: no service '$name'"
      want[$name]="${BASH_REMATCH[2]}"
    else
      die "--replicas: bad item '$item'"
    fi
  done
  for row in "${SERVICE_PORTS[@]}"; do
    read -r name _ <<<"$row"
    n="${want[$name]:-$def}"
    [[ "$n" -ge 1 && "$n" -le $DEV_MAX_REPLICAS ]] ||
      die "--replicas: $name=$n (1 to $DEV_MAX_REPLICAS)"
    out+=("$name $n")
  done
  printf '%s\n' "${out[@]}" >"$RUN/replicas.new"
}

# Replicas of a service (1 unless `up --replicas` said otherwise).
replicas_of() { # name
  local n
  n="$(awk -v s="$1" '$1 == s { print $2 }' "$RUN/replicas" 2>/dev/null || true)"
  echo "${n:-1}"
}

# A replica's port: column as service_port (2 RPC, 3 admin, 4 bus).
replica_port() { # name column k
  echo $(($(service_port "$1" "$2") + DEV_REPLICA_STEP * $3))
}

# pid/log file stem: "orders" for replica 0, "orders-2" for replica 2.
replica_stem() { # name k
  if [[ "$2" -eq 0 ]]; then echo "$1"; else echo "$1-$2"; fi
}

# "tcp://127.0.0.1:P0,tcp://127.0.0.1:P1,..." for every replica.
replica_list() { # name column
  local k out=""
  for ((k = 0; k < $(replicas_of "$1"); k++)); do
    out+="${out:+,}tcp://127.0.0.1:$(replica_port "$1" "$2" "$k")"
  done
  echo "$out"
}

# The public (HTTP or WebSocket) port a replica listens on: the public
# port itself when it is alone, else behind the load balancer.
public_port() { # name public k
  if [[ "$(replicas_of "$1")" -le 1 ]]; then echo "$2"; else
    echo $(($2 + DEV_REPLICA_STEP * ($3 + 1))); fi
}

lb_needed() {
  [[ "$(replicas_of gateway)" -gt 1 ]] && service_exists gateway && return 0
  [[ "$(replicas_of realtime)" -gt 1 ]] && service_exists realtime && return 0
  return 1
}

# "name:public:port,port,..." for tools/lb/nginx_conf.sh: every replica's port.
lb_spec() { # name public
  local k ports=""
  for ((k = 0; k < $(replicas_of "$1"); k++)); do
    ports+="${ports:+,}$(public_port "$1" "$2" "$k")"
  done
  echo "$1:$2:$ports"
}

write_lb_conf() {
  mkdir -p "$RUN/lb"
  local specs=()
  if [[ "$(replicas_of gateway)" -gt 1 ]] && service_exists gateway; then
    specs+=("$(lb_spec gateway "$GATEWAY_HTTP_PORT")")
  fi
  if [[ "$(replicas_of realtime)" -gt 1 ]] && service_exists realtime; then
    specs+=("$(lb_spec realtime "${DEV_WS_PORT:-8081}")")
  fi
  "$ROOT/tools/lb/nginx_conf.sh" "$RUN/lb" "$RUN/logs/lb.log" "${specs[@]}" \
    >"$RUN/lb/nginx.conf"
}

start_lb() {
  lb_needed || return 0
  if pid_alive "$RUN/pids/lb.pid"; then log "lb already running"; return; fi
  command -v nginx >/dev/null || die "nginx not installed (tools/dev setup)"
  write_lb_conf
  nohup nginx -e "$RUN/logs/lb.log" -p "$RUN/lb" -c "$RUN/lb/nginx.conf" \
    >>"$RUN/logs/lb.log" 2>&1 &
  echo $! >"$RUN/pids/lb.pid"
  local i port="$GATEWAY_HTTP_PORT"
  service_exists gateway && [[ "$(replicas_of gateway)" -gt 1 ]] || port="${DEV_WS_PORT:-8081}"
  for i in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      log "lb (nginx) on 127.0.0.1:$port"
      return
    fi
    pid_alive "$RUN/pids/lb.pid" || { tail -20 "$RUN/logs/lb.log"; die "nginx exited"; }
    sleep 0.1
  done
  die "nginx not listening on $port after 10 s"
}

# Sets .run/replicas for `up`. While services run, what they were started
# with stands (changing it takes `tools/dev down` first); otherwise the
# spec, or one replica of everything when there is none.
choose_replicas() { # spec, may be ""
  if any_service_running; then
    [[ -n "$1" ]] || return 0
    parse_replicas "$1"
    local row name now
    for row in "${SERVICE_PORTS[@]}"; do
      read -r name _ <<<"$row"
      now="$(awk -v s="$name" '$1 == s { print $2 }' "$RUN/replicas.new")"
      [[ "$now" == "$(replicas_of "$name")" ]] ||
        die "running with other replica counts (tools/dev status): tools/dev down first"
    done
    rm -f "$RUN/replicas.new"
    return 0
  fi
  if [[ -n "$1" ]]; then
    parse_replicas "$1"
    mv "$RUN/replicas.new" "$RUN/replicas"
  else
    rm -f "$RUN/replicas"
  fi
}
