#!/usr/bin/env bash
# Load benchmark of `flavorbox serve` on loopback with oha (crates.io, a
# maintained HTTP load generator, installed into ~/.cache/flavorbox/tools).
#
#   bench/server-load.sh [SECONDS] [RATE] [TOPOLOGY]
#
# TOPOLOGY is where the state is and how many servers answer:
#   sqlite    one server on the home's SQLite file (the default)
#   postgres  one server on a private PostgreSQL (Debian's postgresql,
#             initdb in a temporary directory, durable settings)
#   cluster   three replicas on that PostgreSQL behind haproxy (round robin)
#   all       the three, one after the other, and a table comparing them
#
# Measures, on this machine, requests/s and p50/p99 latency of:
#   healthz  GET /healthz (no auth, no sandbox: the HTTP baseline)
#   check    POST /v1/registries/r/check (auth, store, a flavor call)
#   put      PUT /v1/registries/{name} (auth, flavor validation, a write)
# each at full speed with one tenant, then `check` at a fixed RATE for a good
# tenant alone and again while a hostile tenant hammers endless-loop and
# memory-bomb flavors on 8 connections. Writes bench/results/server-load.json
# and prints a Markdown table (copied into the README). Only loopback traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-10}"
RATE="${2:-500}"
TOPOLOGY="${3:-sqlite}"
if [ "$TOPOLOGY" = all ]; then
    for topology in sqlite postgres cluster; do
        bash "$0" "$SECONDS_EACH" "$RATE" "$topology" || echo "bench: the $topology run exited with $?" >&2
    done
    python3 - <<'PY'
import json
print("| topology | check requests/s | check p99 ms | good tenant p99 alone ms | under attack ms |")
print("|---|---:|---:|---:|---:|")
base = None
for t, label in [("sqlite", "one server, SQLite"), ("postgres", "one server, PostgreSQL"),
                 ("cluster", "three replicas on PostgreSQL behind haproxy")]:
    d = json.load(open(f"bench/results/server-load-{t}.json"))
    c = d["check"]
    print(f"| {label} | {c['rps']:.0f} | {c['p99_ms']:.2f} | {d['alone']['p99_ms']:.2f} | {d['attacked']['p99_ms']:.2f} |")
    if t == "sqlite":
        base = c["p99_ms"]
    elif t == "postgres":
        print()
        print(f"PostgreSQL check p99 / SQLite check p99: {c['p99_ms'] / base:.2f}x")
PY
    exit 0
fi
case "$TOPOLOGY" in sqlite | postgres | cluster) ;; *)
    echo "bench: unknown topology $TOPOLOGY (sqlite, postgres, cluster or all)" >&2
    exit 2
    ;;
esac
TOOLS="$HOME/.cache/flavorbox/tools"
OHA="$TOOLS/bin/oha"
if [ ! -x "$OHA" ]; then
    echo "bench: installing oha into $TOOLS"
    cargo install oha --locked --root "$TOOLS" --quiet
fi
cargo build --release -p flavorbox --bin flavorbox --quiet
cargo build -p flavorbox-tests --quiet
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
FLAVORBOX="$TARGET_DIR/release/flavorbox"
HOSTILE=$(ls -t "$TARGET_DIR"/debug/build/flavorbox-tests-*/out/guest-hostile.wasm | head -1)

WORK=$(mktemp -d /tmp/fbx-bench-XXXX)
chmod 755 "$WORK"
SERVER_PIDS=()
PGBIN=
cleanup() {
    for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    jobs -p | xargs -r kill 2>/dev/null || true
    if [ -n "$PGBIN" ]; then as_postgres "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast stop >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# initdb refuses root: the cluster runs as the postgres user then.
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

head -c 32 /dev/urandom >"$WORK/key" && chmod 600 "$WORK/key"
ADMIN=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
cat >"$WORK/server.toml" <<TOML
[quotas]
max_registries = 100000
max_queued_calls = 64
cpu_ms_per_minute = 20000
timeout_ms = 2000
memory_mib = 64
[tenants.good]
max_concurrent_calls = 4
max_queued_calls = 256
cpu_ms_per_minute = 600000
TOML
DATABASE=()
if [ "$TOPOLOGY" != sqlite ]; then
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    mkdir -p "$WORK/pg"
    [ "$(id -u)" = 0 ] && chown postgres: "$WORK/pg"
    as_postgres "$PGBIN/initdb" -D "$WORK/pg/data" -U postgres -A trust -E UTF8 >/dev/null
    PGPORT=$(free_port)
    as_postgres "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
        -o "-p $PGPORT -c listen_addresses=127.0.0.1 -k $WORK/pg -c max_connections=200" start >/dev/null
    "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -c "CREATE DATABASE flavorbox"
    DATABASE=(--database "postgres://postgres@127.0.0.1:$PGPORT/flavorbox")
fi
REPLICAS=1
[ "$TOPOLOGY" = cluster ] && REPLICAS=3
URLS=()
for i in $(seq 1 "$REPLICAS"); do
    FLAVORBOX_ADMIN_TOKEN="$ADMIN" FLAVORBOX_SECRETS_KEY_FILE="$WORK/key" FLAVORBOX_LOG=warn FLAVORBOX_REPLICA="r$i" \
        "$FLAVORBOX" --home "$WORK/home$i" serve --listen 127.0.0.1:0 --config "$WORK/server.toml" \
        --allow-registry 127.0.0.1:5000 "${DATABASE[@]}" >"$WORK/out$i" 2>"$WORK/log$i" &
    SERVER_PIDS+=($!)
    for _ in $(seq 1 600); do grep -q '^listening on ' "$WORK/out$i" 2>/dev/null && break; sleep 0.1; done
    URLS+=("$(sed -n 's/^listening on //p' "$WORK/out$i")")
    for _ in $(seq 1 600); do curl -fsS "${URLS[-1]}/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
done
URL=${URLS[0]}
if [ "$TOPOLOGY" = cluster ]; then
    LBPORT=$(free_port)
    {
        printf 'global\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n'
        printf 'frontend fb\n  bind 127.0.0.1:%s\n  default_backend replicas\nbackend replicas\n  balance roundrobin\n  option httpchk GET /readyz\n' "$LBPORT"
        for i in "${!URLS[@]}"; do printf '  server r%s %s check\n' "$i" "${URLS[$i]#http://}"; done
    } >"$WORK/haproxy.cfg"
    haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
    SERVER_PIDS+=($!)
    URL="http://127.0.0.1:$LBPORT"
    for _ in $(seq 1 200); do curl -fsS "$URL/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
fi
tenant() { curl -fsS -X POST -H "Authorization: Bearer $ADMIN" -d "{\"name\":\"$1\"}" "$URL/v1/tenants" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
GOOD=$(tenant good)
EVIL=$(tenant evil)
curl -fsS -X PUT -H "Authorization: Bearer $GOOD" -d '{"flavor":"default","uri":"127.0.0.1:5000"}' "$URL/v1/registries/r" >/dev/null
curl -fsS -X PUT -H "Authorization: Bearer $EVIL" --data-binary @"$HOSTILE" "$URL/v1/flavors/hostile" >/dev/null

run() { # name, extra oha args...
    local name=$1; shift
    "$OHA" --no-tui --output-format json -z "${SECONDS_EACH}s" "$@" >"$WORK/$name.json"
}
CHECK=(-m POST -H "Authorization: Bearer $GOOD" -H "Content-Type: application/json" -d '{"image":"127.0.0.1:5000/team/app:1"}' "$URL/v1/registries/r/check")
run healthz -c 16 "$URL/healthz"
run check -c 16 "${CHECK[@]}"
run put -c 16 -m PUT -H "Authorization: Bearer $GOOD" -d '{"flavor":"default","uri":"127.0.0.1:5000"}' --rand-regex-url "$URL/v1/registries/p[a-z]{12}"
run alone -c 16 -q "$RATE" "${CHECK[@]}"
# The attack: endless loops and memory bombs on 8 connections, all along.
"$OHA" --no-tui --output-format json -z "$((SECONDS_EACH + 2))s" -c 4 -m PUT -H "Authorization: Bearer $EVIL" \
    -d '{"flavor":"hostile","uri":"127.0.0.1:5000","config":{"mode":"loop"}}' "$URL/v1/registries/x" >"$WORK/attack-loop.json" &
ATTACK_LOOP=$!
"$OHA" --no-tui --output-format json -z "$((SECONDS_EACH + 2))s" -c 4 -m PUT -H "Authorization: Bearer $EVIL" \
    -d '{"flavor":"hostile","uri":"127.0.0.1:5000","config":{"mode":"alloc"}}' "$URL/v1/registries/y" >"$WORK/attack-alloc.json" &
ATTACK_ALLOC=$!
sleep 1
run attacked -c 16 -q "$RATE" "${CHECK[@]}"
# Only the attackers: a bare `wait` would also wait for the server.
wait "$ATTACK_LOOP" "$ATTACK_ALLOC"

mkdir -p bench/results
RESULT=bench/results/server-load.json
[ "$TOPOLOGY" != sqlite ] && RESULT=bench/results/server-load-$TOPOLOGY.json
python3 - "$WORK" "$RATE" "$SECONDS_EACH" "$TOPOLOGY" >"$RESULT" <<'PY'
import json, os, sys, platform
work, rate, secs, topology = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def load(name):
    d = json.load(open(os.path.join(work, name + ".json")))
    s, p = d["summary"], d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution", {})
    return {"rps": s["requestsPerSec"], "p50_ms": p["p50"] * 1000, "p99_ms": p["p99"] * 1000,
            "success_rate": s["successRate"], "status": codes}
out = {name: load(name) for name in ["healthz", "check", "put", "alone", "attacked", "attack-loop", "attack-alloc"]}
out["good_p99_ratio_under_attack"] = out["attacked"]["p99_ms"] / out["alone"]["p99_ms"]
out["check_vs_healthz_rps_ratio"] = out["check"]["rps"] / out["healthz"]["rps"]
out["machine"] = {"cores": os.cpu_count(), "system": platform.platform()}
out["rate"], out["seconds_each"], out["topology"] = rate, secs, topology
print(json.dumps(out, indent=2))
PY
[ "$TOPOLOGY" = sqlite ] && cp "$RESULT" bench/results/server-load-sqlite.json
python3 - "$RESULT" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("| run | requests/s | p50 ms | p99 ms | statuses |")
print("|---|---:|---:|---:|---|")
for k, label in [("healthz", "GET /healthz, 16 conns (HTTP baseline)"), ("check", "check, 16 conns"),
                 ("put", "PUT /v1/registries, 16 conns"), ("alone", f"check at {d['rate']}/s, good tenant alone"),
                 ("attacked", f"check at {d['rate']}/s, hostile tenant attacking"),
                 ("attack-loop", "hostile: endless loops (4 conns)"), ("attack-alloc", "hostile: memory bombs (4 conns)")]:
    r = d[k]
    print(f"| {label} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['status']} |")
print()
print(f"good tenant p99 under attack / alone: {d['good_p99_ratio_under_attack']:.2f}x; check/healthz throughput: {d['check_vs_healthz_rps_ratio']:.2f}")
PY
