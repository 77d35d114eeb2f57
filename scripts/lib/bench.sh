# Helpers shared by the benchmark scripts (sourced, not run).

# Waits for a log line containing $2 in file $1, up to $3 seconds.
wait_for_line() {
  for _ in $(seq $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "$(basename "$0"): no '$2' in $1 after $3 s" >&2; tail -n 20 "$1" >&2; return 1
}

# A field of a `name=value` log line: field LINE NAME
field() {
  sed -E "s/.*[ ]$2=([^ ]+).*/\1/" <<<"$1"
}

# Writes a configuration for application $2 on bootstrap $3 with $4 partitions, every
# topic named after the application, into directory $1; prints its path.
write_app_config() {
  cat >"$1/$2.toml" <<CONF
application_id = "$2"
[kafka]
bootstrap_servers = "$3"
default_partitions = $4
[http]
listen = "127.0.0.1:0"
[kafka.topics]
clickstream = "$2.clickstream"
cart = "$2.cart"
stock = "$2.stock"
customers = "$2.customers"
abandoned_cart = "$2.abandoned_cart"
back_in_stock = "$2.back_in_stock"
offers = "$2.offers"
segments = "$2.segments"
profiles = "$2.profiles"
products = "$2.products"
dead_letter = "$2.dlq"
CONF
  echo "$1/$2.toml"
}

# The busiest threads of process $1 (alive now) by CPU time: "name cpu/run-queue s"
# each, where run-queue is the time it was ready but waited for a core. Threads of one
# name are summed; the stream threads are named stream-0, stream-1, ….
thread_times() {
  for task in /proc/"$1"/task/*; do
    printf '%s %s %s\n' "$(tr ' ' _ <"$task/comm" 2>/dev/null)" \
      "$(awk '{ print $14 + $15 }' "$task/stat" 2>/dev/null)" \
      "$(awk '{ print int($2 / 10000000) }' "$task/schedstat" 2>/dev/null)"
  done | awk -v hz="$(getconf CLK_TCK)" '$2 != "" { cpu[$1] += $2 / hz; queued[$1] += $3 / 100 }
    END { for (n in cpu) printf "%.1f %s %.1f/%.1f s\n", cpu[n], n, cpu[n], queued[n] }' |
    sort -rn | head -n "${2:-6}" | cut -d' ' -f2- | paste -sd, - | sed 's/,/, /g'
}

# The peak resident set of process $1 in MiB (0 once it has gone).
peak_rss_mib() {
  awk '/VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo 0
}
