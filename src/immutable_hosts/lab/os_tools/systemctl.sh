#!/usr/bin/busybox sh
# systemctl in the immutable-hosts lab's OS images, for a container build: 'enable UNIT...' and 'disable UNIT...'
# offline, as systemctl does when no systemd runs (a RUN step of a build): enable links the unit into each
# WantedBy=/RequiredBy= target of its [Install] section under /etc/systemd/system; disable removes every such link
# under /etc/systemd/system. The lab's images carry no systemd; nothing else is simulated.
set -eu
export LC_ALL=C
verb=${1:-}
if { [ "$verb" != enable ] && [ "$verb" != disable ]; } || [ $# -lt 2 ]; then
    echo "systemctl: the lab's image knows 'enable UNIT...' and 'disable UNIT...' only" >&2
    exit 1
fi
shift
if [ "$verb" = disable ]; then
    for unit; do
        [ -f "/etc/systemd/system/$unit" ] || [ -f "/usr/lib/systemd/system/$unit" ] || {
            echo "Failed to disable unit: Unit file $unit does not exist." >&2
            exit 1
        }
        for link in /etc/systemd/system/*.wants/"$unit" /etc/systemd/system/*.requires/"$unit"; do
            if [ -L "$link" ]; then
                rm -f "$link"
                echo "Removed '$link'."
            fi
        done
    done
    exit 0
fi
for unit; do
    path=
    for dir in /etc/systemd/system /usr/lib/systemd/system; do
        [ -f "$dir/$unit" ] && { path=$dir/$unit; break; }
    done
    [ -n "$path" ] || { echo "Failed to enable unit: Unit $unit does not exist" >&2; exit 1; }
    targets=$(awk '
        /^[ \t]*\[/ { install = ($0 ~ /^[ \t]*\[Install\][ \t]*$/); next }
        install && /^[ \t]*(WantedBy|RequiredBy)[ \t]*=/ {
            kind = ($0 ~ /^[ \t]*WantedBy/) ? "wants" : "requires"
            sub(/^[^=]*=/, ""); n = split($0, names, /[ \t]+/)
            for (i = 1; i <= n; i++) if (names[i] != "") print names[i] "." kind
        }' "$path")
    [ -n "$targets" ] || { echo "The unit files have no installation config (WantedBy=, RequiredBy=, ...)." >&2; continue; }
    for target in $targets; do
        mkdir -p "/etc/systemd/system/$target"
        link="/etc/systemd/system/$target/$unit"
        if [ "$(readlink "$link" 2>/dev/null || true)" != "$path" ]; then
            ln -sfn "$path" "$link"
            echo "Created symlink '$link' → '$path'."
        fi
    done
done
