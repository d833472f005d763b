# What the examples' run scripts (examples/*/run) share; sourced by them from the repository's
# root after `set -euo pipefail`. Defines TARGET (the cargo target dir) and RUN_TMP (a temp dir
# removed on exit), installs the cleanup trap that stops every started process, and provides:
#   need_node <why>                 fail unless Node.js is installed
#   build <cargo build args...>     cargo build (debug), then client-wasm/build-pkg when the
#                                   wasm client package is missing
#   start <name> <ready-pattern> <command...>
#                                   start a process in the background and wait (30 s at most)
#                                   until a line of its stdout matches the (bash glob) pattern;
#                                   fails with the process's exit status if it exits first or
#                                   with a timeout message. Later stdout lines are passed through.
#   wait_any                        wait until one of the started processes exits

TARGET="${CARGO_TARGET_DIR:-target}"
RUN_TMP="$(mktemp -d)"
pids=()

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$RUN_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_node() {
    command -v node >/dev/null 2>&1 || { echo "Node.js is needed for $1 (apt-get install nodejs)" >&2; exit 1; }
}

build() {
    echo "==> cargo build $*"
    cargo build "$@" --quiet
    if [ ! -f client-wasm/pkg/index.js ]; then
        echo "==> client-wasm/build-pkg (the wasm client package the page imports)"
        client-wasm/build-pkg
    fi
}

start() {
    local name="$1" pattern="$2"; shift 2
    local fifo="$RUN_TMP/$name.out" line status pid
    mkfifo "$fifo"
    # The process is the FIFO's only writer, so reading it ends (EOF) when the process exits.
    "$@" 3<&- > "$fifo" &
    pid=$!
    pids+=("$pid")
    exec 3< "$fifo"
    while true; do
        if ! IFS= read -r -t 30 -u 3 line; then
            exec 3<&-
            if kill -0 "$pid" 2>/dev/null; then
                echo "$name did not print its ready line within 30 s: $*" >&2
            else
                status=0; wait "$pid" || status=$?
                echo "$name exited with status $status before it was ready: $*" >&2
            fi
            exit 1
        fi
        # shellcheck disable=SC2053 # the pattern is a glob on purpose
        if [[ "$line" == $pattern ]]; then
            echo "$line"
            break
        fi
        echo "$line"
    done
    # Pass the rest of its stdout through (and never let the process block on a full pipe).
    cat <&3 &
    pids+=("$!")
    exec 3<&-
}

wait_any() {
    wait -n
}
