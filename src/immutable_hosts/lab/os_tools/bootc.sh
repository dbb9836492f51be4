#!/usr/bin/busybox sh
# bootc in the immutable-hosts lab's OS images, for a container build: 'container lint', the last step of a derived
# image's Containerfile. Real bootc cannot run here; this one makes the checks the lab's images can fail: exactly one
# kernel under /usr/lib/modules, and kernel argument files (/usr/lib/bootc/kargs.d/*.toml) that hold a kargs list.
set -eu
export LC_ALL=C
if [ "${1:-}" != container ] || [ "${2:-}" != lint ]; then
    echo "bootc: the lab's image knows 'container lint' only" >&2
    exit 1
fi
passed=0
kernels=$(for k in /usr/lib/modules/*/vmlinuz; do [ -f "$k" ] && basename "$(dirname "$k")"; done)
count=$(echo "$kernels" | grep -c . || true)
if [ "$count" -gt 1 ]; then
    echo "Lint failed: kernel: Multiple kernels found: $(echo "$kernels" | tr '\n' ' ')" >&2; exit 1
elif [ "$count" -eq 0 ]; then
    echo "Lint failed: kernel: No kernel found in /usr/lib/modules" >&2; exit 1
fi
passed=$((passed + 1))
for f in /usr/lib/bootc/kargs.d/*.toml; do
    [ -f "$f" ] || continue
    grep -Eq '^[[:space:]]*kargs[[:space:]]*=[[:space:]]*\[' "$f" || {
        echo "Lint failed: kargs: $f: no 'kargs = [...]' list" >&2; exit 1; }
done
passed=$((passed + 1))
echo "Checks passed: $passed"
