"""Reading the processor's /metrics snapshots (Prometheus text) in the bench scripts.

    python3 scripts/lib/prom.py quantiles METRIC [BEFORE.prom] AFTER.prom Q...
        prints each quantile (seconds to ms) of histogram METRIC over what AFTER
        holds, less BEFORE's counts when given
    python3 scripts/lib/prom.py increase PREFIX BEFORE.prom AFTER.prom
        prints how much the series starting with PREFIX grew, summed
"""
import re
import sys


def read(path):
    """Every sample of a snapshot: series (name and labels) -> value."""
    series = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        series[name] = float(value)
    return series


def total(series, prefix):
    return sum(v for k, v in series.items() if k.startswith(prefix))


def quantile(after, metric, q, before=None):
    """Quantile q of histogram `metric`, interpolated within its buckets, in seconds."""
    before = before or {}
    buckets = sorted(
        (float(re.search(r'le="([^"]+)"', k).group(1)), v - before.get(k, 0))
        for k, v in after.items()
        if k.startswith(metric + "_bucket")
    )
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    rank, prev_le, prev = q * buckets[-1][1], 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev) / max(count - prev, 1e-9))
        prev_le, prev = le, count
    return prev_le


def main(args):
    command = args[0]
    if command == "quantiles":
        metric, rest = args[1], args[2:]
        files = [a for a in rest if a.endswith(".prom")]
        qs = [float(a) for a in rest if not a.endswith(".prom")]
        before = read(files[0]) if len(files) == 2 else None
        after = read(files[-1])
        print(" ".join("%.1f" % (quantile(after, metric, q, before) * 1000) for q in qs))
    elif command == "increase":
        prefix, before, after = args[1], read(args[2]), read(args[3])
        print("%.0f" % (total(after, prefix) - total(before, prefix)))
    else:
        sys.exit("prom.py: unknown command " + command)


if __name__ == "__main__":
    main(sys.argv[1:])
