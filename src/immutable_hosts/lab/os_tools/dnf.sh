#!/usr/bin/busybox sh
# dnf in the immutable-hosts lab's OS images: a simulation, as the lab's rpm-ostree is. Real dnf cannot run here, so
# this one resolves names in the lab's package catalogue (/usr/share/lab-dnf, written when the image was built) and
# installs or removes a package by recording it where the lab's trees record packages: /usr/share/doc/NAME/lab-package
# holds its NEVRA. That is the package list the lab's rpm-ostree and bootc read after a host switches to the image.
#
# Repositories as the lab's rpm-ostree sees them: Fedora's (fedora, updates) always; the lab's others while an
# enabled section of /etc/yum.repos.d/*.repo names their baseurl. A package of a repository with gpgcheck needs a
# signed package and a gpgkey; the lab's unsigned repository fails the check.
# Commands: install, remove, clean all. Options, anywhere: -y/--assumeyes, -q/--quiet; --setopt=*, --nodocs and
# --refresh are accepted and change nothing here.
set -eu
export LC_ALL=C
CAT=/usr/share/lab-dnf
DOC=/usr/share/doc
yes=
quiet=
# Options anywhere; what is left (the command and its arguments) stays in "$@", in order.
for arg; do
    shift
    case "$arg" in
        -y|--assumeyes) yes=1 ;;
        -q|--quiet) quiet=1 ;;
        --setopt=*|--nodocs|--refresh) ;;
        -*) echo "Unknown argument \"$arg\" for command \"dnf\"." >&2; exit 2 ;;
        *) set -- "$@" "$arg" ;;
    esac
done
command=${1:-}
[ $# -gt 0 ] && shift

say() { [ -n "$quiet" ] || echo "$@"; }

# shellcheck source=/dev/null
release() { ( . /usr/lib/os-release && echo "$VERSION_ID" ); }

# url<TAB>gpgcheck<TAB>gpgkey for each baseurl of each enabled repository section.
enabled_urls() {
    for f in /etc/yum.repos.d/*.repo; do
        [ -f "$f" ] && { cat "$f"; echo; }
    done | awk -v rel="$(release)" -v arch="$(uname -m)" '
        function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
        function flush(   i) { if (open && enabled) for (i = 1; i <= n; i++) if (url[i] != "") print url[i] "\t" gpg "\t" key; open = 0; n = 0 }
        /^[ \t]*\[.*\][ \t]*$/ { flush(); open = 1; enabled = 1; gpg = "0"; key = ""; next }
        /^[ \t]*[#;]/ { next }
        open && index($0, "=") {
            k = trim(substr($0, 1, index($0, "=") - 1)); v = trim(substr($0, index($0, "=") + 1))
            if (k == "enabled") enabled = (tolower(v) ~ /^(1|yes|true|on)$/)
            else if (k == "gpgcheck") gpg = (tolower(v) ~ /^(1|yes|true|on)$/) ? "1" : "0"
            else if (k == "gpgkey") key = v
            else if (k == "baseurl") {
                n = split(v, parts, /[ ,]+/)
                for (i = 1; i <= n; i++) { u = parts[i]; gsub(/\$releasever/, rel, u); gsub(/\$basearch/, arch, u); sub(/\/+$/, "", u); url[i] = u }
            }
        }
        END { flush() }'
}

# NEVRA<TAB>repository<TAB>gpgcheck<TAB>gpgkey<TAB>signed of a name, or nothing.
resolve() {
    awk -v name="$1" '$1 == name { print $2 "\tfedora\t0\t\tyes"; exit }' "$CAT/fedora.list" | head -n 1 | grep . && return 0
    urls=$(enabled_urls)
    for list in "$CAT"/extra/*.list; do
        [ -f "$list" ] || continue
        found=$(awk -v name="$1" -v urls="$urls" '
            NR == 1 { base = $2; signed = $4
                      n = split(urls, lines, "\n")
                      for (i = 1; i <= n; i++) { split(lines[i], f, "\t"); if (f[1] == base) { hit = 1; gpg = f[2]; key = f[3] } }
                      if (!hit) exit; next }
            $1 == name { print $2 "\t" FILENAME "\t" gpg "\t" key "\t" signed; exit }' "$list")
        if [ -n "$found" ]; then echo "$found"; return 0; fi
    done
    return 1
}

confirm() {
    [ -n "$yes" ] && return 0
    echo "Is this ok [y/N]: Operation aborted by the user."
    exit 1
}

case "$command" in
install)
    [ $# -gt 0 ] || { echo "Missing positional argument \"package_specs\" for command \"install\"." >&2; exit 2; }
    say "Updating and loading repositories:"
    say "Repositories loaded."
    plan=
    missing=
    for name; do
        if [ -f "$DOC/$name/lab-package" ]; then
            say "Package \"$(cat "$DOC/$name/lab-package")\" is already installed."
            continue
        fi
        if ! found=$(resolve "$name"); then missing="$missing $name"; continue; fi
        plan="$plan
$name	$found"
    done
    if [ -n "$missing" ]; then
        echo "Failed to resolve the transaction:" >&2
        for name in $missing; do echo "No match for argument: $name" >&2; done
        echo "You can try to add to command line:" >&2
        echo "  --skip-unavailable to skip unavailable packages" >&2
        exit 1
    fi
    if [ -z "$plan" ]; then say "Nothing to do."; exit 0; fi
    confirm
    echo "$plan" | while IFS="	" read -r name nevra repo gpg key signed; do
        [ -n "$name" ] || continue
        if [ "$gpg" = 1 ] && { [ "$signed" != yes ] || [ -z "$key" ]; }; then
            echo "Transaction failed: Signature verification failed." >&2
            echo "PGP check for package \"$nevra\" from repository \"$(basename "$repo" .list)\" has failed: the package is not signed by a key the repository names." >&2
            exit 1
        fi
    done
    echo "$plan" | while IFS="	" read -r name nevra repo gpg key signed; do
        [ -n "$name" ] || continue
        mkdir -p "$DOC/$name"
        echo "$nevra" > "$DOC/$name/lab-package"
        say "[1/1] Installing $nevra"
    done
    say "Complete!"
    ;;
remove)
    [ $# -gt 0 ] || { echo "Missing positional argument \"package_specs\" for command \"remove\"." >&2; exit 2; }
    for name; do
        if [ ! -f "$DOC/$name/lab-package" ]; then
            echo "Failed to resolve the transaction:" >&2
            echo "No packages to remove for argument: $name" >&2
            exit 1
        fi
    done
    confirm
    for name; do
        say "Removing $(cat "$DOC/$name/lab-package")"
        rm -rf "${DOC:?}/$name"
    done
    say "Complete!"
    ;;
clean)
    [ "${1:-}" = all ] || { echo "dnf clean: the lab's dnf knows 'clean all' only" >&2; exit 2; }
    rm -rf /var/cache/libdnf5 /var/cache/dnf
    say "Removed 0 files, 0 directories (total of 0 B). 0 errors occurred."
    ;;
"")
    echo "Missing command. Add \"--help\" for more information about the arguments." >&2
    exit 2
    ;;
*)
    echo "dnf $command: not a command of the lab's simulated dnf (install, remove, clean all)" >&2
    exit 2
    ;;
esac
