#!/usr/bin/env bash
# Runs store/benches/grouped_subscription.rs against a baseline revision and against the
# work tree, alternating, in one run, and prints the after/before ratios of the medians.
#
#   scripts/bench-grouped-subscription.sh BASE_REV [ROUNDS]
#
# The baseline is exported with `git archive` into a temporary directory (no worktree is
# created); the bench file is copied into it, since it only uses API the baseline has.
set -euo pipefail
base=${1:?usage: $0 BASE_REV [ROUNDS]}
rounds=${2:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git -C "$root" archive "$base" | tar -x -C "$tmp"
cp "$root/store/benches/grouped_subscription.rs" "$tmp/store/benches/"
# Another version gives the baseline's artifacts names of their own in a shared
# CARGO_TARGET_DIR (the path alone does not; both builds would share one binary).
sed -i 's/^version.workspace = true$/version = "0.0.0-baseline"/' "$tmp/store/Cargo.toml"
grep -q 'name = "grouped_subscription"' "$tmp/store/Cargo.toml" ||
    printf '\n[[bench]]\nname = "grouped_subscription"\nharness = false\n' >>"$tmp/store/Cargo.toml"
run() { (cd "$1" && cargo bench -q -p noex-store --bench grouped_subscription 2>/dev/null); }
(cd "$tmp" && cargo bench -q -p noex-store --bench grouped_subscription --no-run)
(cd "$root" && cargo bench -q -p noex-store --bench grouped_subscription --no-run)
out=$tmp/results
: >"$out"
for r in $(seq 1 "$rounds"); do
    run "$tmp" | sed "s/^/before $r /" | tee -a "$out"
    run "$root" | sed "s/^/after $r /" | tee -a "$out"
done
echo "--- after / before (median over rounds of each figure)"
awk '
  function ms(s) { sub(/ms$/, "", s); return s + 0 }
  $3 ~ /^(reeval|insert|get):$/ {
    name = $3; sub(/:$/, "", name)
    for (i = 4; i <= NF; i++) if ($i ~ /^(p50|p99|max)=/) {
      split($i, kv, "="); key = name " " kv[1]
      vals[$1, key] = vals[$1, key] " " ms(kv[2]); keys[key] = 1
    }
  }
  /initial_eval=|drain_after_last_insert=/ {
    for (i = 3; i <= NF; i++) if ($i ~ /^(initial_eval|drain_after_last_insert)=/) {
      split($i, kv, "="); key = kv[1]
      vals[$1, key] = vals[$1, key] " " ms(kv[2]); keys[key] = 1
    }
  }
  function median(s,   n, a, i, j, t) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    for (k in keys) {
      b = median(vals["before", k]); a = median(vals["after", k])
      printf "%-28s before %10.3f ms  after %9.3f ms  after/before %.3g\n", k, b, a, (b > 0 ? a / b : 0)
    }
  }' "$out" | sort
