# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # A host's whole desired state (module_utils/_host_state.py ARGUMENT_SPEC): immutable.hosts.host_state converges it,
    # immutable.hosts.image_context compiles it into an image's build context. Written by tools/host_state_doc.py from
    # the unit modules' own documentation.
    DOCUMENTATION = r"""
# BEGIN GENERATED OPTIONS (tools/host_state_doc.py)
options:
  os:
    description:
      - 'The operating system: the image trust, registry credentials and package repositories it needs, what the host follows,
        its layered packages and base overrides, its kernel arguments, its initramfs and its automatic updates. Every change
        to the deployment stacks on one pending deployment.'
      - Trust, credentials and repositories converge first, so that the rebase and the layering that need them find them;
        a check plans the rebase against the policy C(trust) would install, and layering against the repositories C(repos)
        would add (without asking rpm-ostree's C(--dry-run), which cannot see them yet; the result warns).
      - A rebase onto an ostree ref (with rpm-ostree) layers C(packages.name) in the same transaction.
    type: dict
    suboptions:
      trust:
        description:
          - Entries of the image signature policy (C(/etc/containers/policy.json)), with their keys and C(registries.d)
            files, in order (a global default C(reject) first, then the scopes it trusts).
          - Each takes the options of M(immutable.hosts.image_policy).
        type: list
        suboptions:
          key:
            description:
              - The public key's text, for the signed types; a PEM public key (C(-----BEGIN PUBLIC KEY-----)) for V(sigstoreSigned),
                an ASCII-armored OpenPGP public key for V(signedBy).
              - Written to C(key_path), by default C(/etc/pki/containers/SCOPE.pub) (C(.gpg) for V(signedBy)), mode 0644.
            type: str
          key_inline:
            description:
              - Put C(key) into the policy (C(keyData), base64) instead of a file.
            type: bool
            default: false
          key_path:
            description:
              - Where the key file is. With C(key), where to write it; without, a key file already on the host (for example
                one the OS ships), named in the policy as it is.
            type: path
          lookaside:
            description:
              - For V(signedBy), the URL signatures are published under (C(registries.d) C(lookaside)).
            type: str
          policy_path:
            description:
              - The policy file.
            type: path
            default: /etc/containers/policy.json
          registries_d_path:
            description:
              - The C(registries.d) file for this scope. Default C(/etc/containers/registries.d/SCOPE.yaml); a file there
                that this module did not write is refused rather than overwritten.
            type: path
          scope:
            description:
              - The scope in C(transport), for C(docker) a registry host (with a port if not 443), a namespace or a repository
                in the fully expanded form (C(quay.io/fedora), C(docker.io/library/busybox)), optionally with a tag or digest,
                or C(*.example.com).
              - The empty string is the transport's default scope.
              - Omitted, the module sets the policy's global C(default), the requirement of every transport and scope that
                has none of its own (C(transport) is then not used, and C(state) is refused, since the policy needs one).
            type: str
          signed_identity:
            description:
              - What identity the signature must claim (C(signedIdentity)).
              - Default for V(sigstoreSigned) is V(matchRepository), since cosign's signatures name the repository only;
                for V(signedBy), none (the policy's own default, C(matchRepoDigestOrExact)).
            type: dict
            suboptions:
              docker_reference:
                description:
                  - For V(exactReference), the reference the signature names.
                type: str
              docker_repository:
                description:
                  - For V(exactRepository), the repository the signature names.
                type: str
              prefix:
                description:
                  - For V(remapIdentity), the prefix of the image's name that is replaced.
                type: str
              signed_prefix:
                description:
                  - For V(remapIdentity), what it is replaced by before matching.
                type: str
              type:
                description:
                  - The identity rule.
                type: str
                choices:
                  - matchExact
                  - matchRepoDigestOrExact
                  - matchRepository
                  - exactReference
                  - exactRepository
                  - remapIdentity
                required: true
          state:
            description:
              - V(present) makes C(type) (with its key) the scope's only requirement.
              - V(absent) removes the scope from the policy (its images then fall under a less specific scope or the default)
                and the C(registries.d) file this module wrote for it. A key file is left in place.
            type: str
            choices:
              - present
              - absent
            default: present
          transport:
            description:
              - The transport the scope belongs to.
            type: str
            choices:
              - atomic
              - containers-storage
              - dir
              - docker
              - docker-archive
              - docker-daemon
              - oci
              - oci-archive
              - ostree
              - sif
              - tarball
            default: docker
          type:
            description:
              - V(sigstoreSigned) accepts images with a sigstore signature by C(key) (cosign, C(skopeo --sign-by-sigstore-private-key)).
              - V(signedBy) accepts images with a GPG "simple signing" signature by C(key).
              - V(insecureAcceptAnything) accepts any image; V(reject) refuses every image.
            type: str
            choices:
              - sigstoreSigned
              - signedBy
              - insecureAcceptAnything
              - reject
            default: sigstoreSigned
          use_sigstore_attachments:
            description:
              - Whether containers/image reads sigstore signatures stored in the registry next to the image (C(docker) transport
                only). Default V(true) for V(sigstoreSigned), else unmanaged.
            type: bool
        elements: dict
        default: []
      registry_auth:
        description:
          - Credentials rpm-ostree and bootc use to pull from a registry (C(/etc/ostree/auth.json)).
          - Each takes the options of M(immutable.hosts.registry_auth), except C(scope), C(user).
        type: list
        suboptions:
          password:
            description:
              - The password or token. Required with C(state). Never logged or shown.
            type: str
          path:
            description:
              - With C(scope), another file (for example C(/run/ostree/auth.json), which does not survive a reboot).
            type: path
          registry:
            description:
              - The registry, as C(host[:port]), optionally with a namespace or repository (C(registry.example.com:5000/team)),
                as pulls name it.
            type: str
            required: true
          state:
            description:
              - V(present) stores the credentials; V(absent) removes the registry's entry.
            type: str
            choices: &id001
              - present
              - absent
            default: present
          username:
            description:
              - The user name. Required with C(state).
            type: str
        elements: dict
        default: []
      repos:
        description:
          - Package repositories (C(/etc/yum.repos.d)) and COPR projects layering reads.
          - Each takes the options of M(immutable.hosts.rpm_repo).
        type: list
        suboptions:
          baseurl:
            description:
              - Base URLs (C($releasever) and C($basearch) are expanded by rpm-ostree). Excludes C(metalink) and C(mirrorlist).
            type: list
            elements: str
          copr:
            description:
              - A COPR project, C(owner/project) or C(@group/project). Its repository is the file the hub serves; of the
                other options only C(state), C(enabled) and C(priority) apply (C(enabled) to every repository in the file,
                C(priority) to the project's).
            type: str
          copr_chroot:
            description:
              - The COPR chroot whose file to fetch, C(DISTRIBUTION-RELEASE-ARCH) (C(fedora-42-aarch64)). Default, from
                the next deployment's C(os-release) (C(ID), C(VERSION_ID)) and the machine's architecture, as C(dnf copr)
                guesses it.
            type: str
          copr_hub:
            description:
              - The COPR instance, as a host name with an optional port or an C(https://) URL. Plain C(http://) is refused
                because the file it serves names the key its packages are checked with.
              - Default C(copr.fedorainfracloud.org).
            type: str
          description:
            description:
              - The repository's name (C(name=)); default for a new one, its id.
            type: str
          enabled:
            description:
              - Whether rpm-ostree uses the repository. Default for a new one, V(true).
            type: bool
          gpgcheck:
            description:
              - Check each package's signature. Default for a new one, V(true).
            type: bool
          gpgkey:
            description:
              - URLs of the keys packages are signed with (C(file://), C(https://)).
            type: list
            elements: str
          key:
            description:
              - The signing key's text, written to C(/etc/pki/rpm-gpg/RPM-GPG-KEY-ID) and named first in C(gpgkey).
            type: str
          metalink:
            description:
              - A metalink URL.
            type: str
          mirrorlist:
            description:
              - A mirror list URL.
            type: str
          name:
            description:
              - The repository id (the section name), for example C(rpmfusion-free) or C(tailscale-stable).
              - Required unless C(copr) is given; mutually exclusive with it.
            type: str
          path:
            description:
              - The file to write; default, the file that already defines the repository, else C(/etc/yum.repos.d/ID.repo).
            type: path
          priority:
            description:
              - 1 (used first) to 99 (the default).
            type: int
          repo_gpgcheck:
            description:
              - Check the signature of the repository's metadata.
            type: bool
          state:
            description:
              - V(present) defines or changes the repository; V(absent) removes its section (and its file once empty).
            type: str
            choices:
              - present
              - absent
            default: present
        elements: dict
        default: []
      rebase:
        description:
          - The ref or image the host follows.
          - Each takes the options of M(immutable.hosts.rebase), except C(wait_timeout), C(bypass_driver), C(install).
        type: dict
        suboptions:
          backend:
            description:
              - V(auto) uses rpm-ostree when present, else bootc. V(bootc) requires an image and refuses a deployment bootc
                cannot manage (one with rpm-ostree layering).
            type: str
            choices:
              - auto
              - rpm-ostree
              - bootc
            default: auto
          bootstrap_unverified:
            description:
              - For C(signature) images whose verification policy is not yet on the host (it comes with the image). When
                no policy in C(/etc/containers/policy.json) demands a signature for the image, rebase to the I(unverified)
                image first and report C(step); after the reboot, run again to switch to the signed reference (a second
                reboot). This is Universal Blue's documented two-step rebase.
              - Without it, such a run fails and says so, instead of rebasing unverified.
            type: bool
            default: false
          follow:
            description:
              - V(tag) follows C(image) as written (a tag moves when C(rpm-ostree upgrade) finds a newer image under it).
              - V(digest) is image mode's way. The tag of C(image) (C(registry/name:tag), a registry image) is resolved
                in the registry at each run (C(skopeo inspect) on the host, with the credentials rpm-ostree uses), and the
                host follows C(registry/name@sha256:...), pinned, so nothing moves it but the next run after a new build.
              - An image built by M(immutable.hosts.image_publish) names the packages it provides (its label C(io.immutable-hosts.packages));
                their requests on the host are dropped in the same transaction as the switch (C(--uninstall=PKG)), since
                the image now carries them (see C(removed)).
            type: str
            choices:
              - tag
              - digest
            default: tag
          image:
            description:
              - A container image such as C(quay.io/fedora/fedora-silverblue:42), or a full ostree image reference such
                as C(ostree-image-signed:docker://quay.io/fedora/fedora-silverblue:42).
              - A full reference must agree with C(signature), C(transport) and C(signature_remote); one that contradicts
                them (C(ostree-unverified-registry:...) with the default C(signature)) fails rather than rebasing with a
                weaker check than asked for.
              - Mutually exclusive with C(ref).
            type: str
          ref:
            description:
              - An ostree refspec such as C(fedora:fedora/42/x86_64/silverblue). A bare ref keeps the current remote.
              - Mutually exclusive with C(image).
            type: str
          signature:
            description:
              - How the image is verified. V(signed) follows C(/etc/containers/policy.json) (C(ostree-image-signed)). V(remote)
                verifies the embedded ostree commit with the keys of ostree remote C(signature_remote). V(unverified) checks
                nothing and is only used when asked for explicitly (the module warns).
            type: str
            choices:
              - signed
              - unverified
              - remote
            default: signed
          signature_remote:
            description:
              - The ostree remote whose keys verify the image, with C(signature).
            type: str
          transport:
            description:
              - Where the image comes from.
            type: str
            choices:
              - registry
              - oci
              - oci-archive
              - containers-storage
              - dir
              - docker-archive
            default: registry
      packages:
        description:
          - Layered packages and base overrides.
          - Each takes the options of M(immutable.hosts.rpm_ostree_packages), except C(wait_timeout), C(bypass_driver).
        type: dict
        suboptions:
          allow_inactive:
            description:
              - Request packages even when the base already provides them (an inactive request, which becomes active if
                a later base drops the package). By default such packages are skipped and reported in C(provided_by_base).
            type: bool
            default: false
          allow_insecure:
            description:
              - Confirms that local RPMs given as plain C(http://) URLs are wanted. rpm-ostree checks no signature of a
                local RPM, so anyone on the network path could swap such a file for one that runs what they like as root;
                they are refused otherwise, and warned about when confirmed. Use C(https://), a path, or a package repository.
            type: bool
            default: false
          apply_live:
            description:
              - Also apply the new packages to the running system (C(--apply-live)). Only pure additions can go live; removals
                and overrides need a reboot, so they are refused with this option.
            type: bool
            default: false
          name:
            description:
              - Packages to layer, by name or capability, or local RPMs by absolute path, C(file://) or C(http(s)://) URL.
            type: list
            elements: str
            default: []
          override_remove:
            description:
              - Base packages to remove from the image (C(rpm-ostree override remove)).
            type: list
            elements: str
            default: []
          override_replace:
            description:
              - Local RPMs (paths or URLs) that replace base packages (C(rpm-ostree override replace)).
            type: list
            elements: str
            default: []
          override_reset:
            description:
              - Base package names whose removal or replacement is undone, or V(all) for every override.
            type: list
            elements: str
            default: []
          provided_by:
            description:
              - Image mode. The registry image (C(registry/name:tag)) the host follows by digest; the packages it provides
                (its label C(io.immutable-hosts.packages), as M(immutable.hosts.image_publish) builds it) are not layered,
                whatever C(state) says, and are no change. Once the host's deployment follows that image's current digest,
                requests for them left from before are dropped; before, the switch drops them (M(immutable.hosts.rebase)
                with C(follow=digest)).
              - M(immutable.hosts.host_state) sets it from its rebase when that follows a digest.
            type: str
          state:
            description:
              - V(present) layers C(name), V(absent) removes those layered packages, V(exact) makes the layered set exactly
                C(name) (repository and local packages alike).
            type: str
            choices:
              - present
              - absent
              - exact
            default: present
      kargs:
        description:
          - Kernel arguments, one entry per state.
          - Each takes the options of M(immutable.hosts.kargs), except C(wait_timeout), C(bypass_driver).
        type: list
        suboptions:
          args:
            description:
              - Kernel arguments, each C(key) or C(key=value), one per list item.
              - With C(state), C(key=value) replaces another value of the same key when the key has exactly one.
              - With C(state), a bare C(key) removes every argument with that key; C(key=value) removes that exact one.
            type: list
            elements: str
            required: true
          state:
            description:
              - V(present) adds missing arguments, V(absent) removes them, V(exact) makes the arguments exactly C(args)
                (other than C(ostree=)).
            type: str
            choices:
              - present
              - absent
              - exact
            default: present
        elements: dict
        default: []
      initramfs:
        description:
          - Client-side initramfs regeneration, its dracut arguments and the C(/etc) files it carries.
          - Each takes the options of M(immutable.hosts.initramfs), except C(wait_timeout), C(bypass_driver).
        type: dict
        suboptions:
          args:
            description:
              - The dracut arguments of the regenerated initramfs (C(--add=tpm2-tss), C(--force-add=fido2)), one per item;
                they replace the current ones. An empty list clears them.
            type: list
            elements: str
          etc:
            description:
              - Files below C(/etc) copied into the initramfs at each deployment (C(/etc/crypttab), C(/etc/vconsole.conf)),
                absolute paths.
            type: list
            elements: str
          etc_exact:
            description:
              - Make C(etc) the whole list of tracked files (untrack the others) instead of adding to it.
            type: bool
            default: false
          regenerate:
            description:
              - V(true) regenerates the initramfs on the host (for example to add C(tpm2-tss) for LUKS unlocking with a
                TPM); V(false) returns to the image's own initramfs. Unset leaves it as it is (but C(args) imply V(true)).
            type: bool
      update_policy:
        description:
          - The automatic update policy (C(/etc/rpm-ostreed.conf)) and its timer.
          - Each takes the options of M(immutable.hosts.update_policy), except C(path).
        type: dict
        suboptions:
          idle_exit_timeout:
            description:
              - Seconds the daemon stays up when idle (C(0) keeps it running). Unset leaves it as it is.
            type: int
          lock_layering:
            description:
              - Forbid package layering and overrides on this host. Unset leaves it as it is.
            type: bool
          on_ac_power:
            description:
              - V(true) lets the update service run only on AC power (C(ConditionACPower=true) in a drop-in of the service
                the timer starts), so a laptop on battery skips an unattended update. V(false) removes that drop-in. Unset
                leaves it as it is.
            type: bool
          policy:
            description:
              - V(none) never updates on its own; V(check) downloads metadata to show available updates; V(stage) also downloads
                and stages the update for the next boot; V(apply) stages it and B(reboots).
              - Unset leaves the setting as it is.
            type: str
            choices:
              - none
              - check
              - stage
              - apply
          skip_metered:
            description:
              - V(true) skips an unattended update while the connection is metered, as NetworkManager says (its C(Metered)
                property is yes or guess-yes; without NetworkManager nothing counts as metered). V(false) removes that gate.
                Unset leaves it as it is.
              - The gate is a small program, C(/usr/local/libexec/immutable-hosts/update-gate), named in an C(ExecCondition=)
                of the service's drop-in; systemd runs it before the update, and its exit status 1 skips the update without
                failing the unit, with the reason in the journal. It is installed while a gate needs it and removed after.
            type: bool
          skip_user_sessions:
            description:
              - V(true) skips an unattended update while a local user session is active (a logind session of class C(user)
                that is not remote, active or online; an SSH login does not count). V(false) removes that gate. Unset leaves
                it as it is. The same program as C(skip_metered).
            type: bool
          timer_enabled:
            description:
              - Enable (and start) or disable (and stop) C(rpm-ostreed-automatic.timer), or on a bootc-only host C(bootc-fetch-apply-updates.timer).
                Unset leaves it as it is.
            type: bool
          window:
            description:
              - A maintenance window, a systemd calendar expression (C(systemd.time(7)), for example C(Sat 02:00) or C(Mon..Fri
                22:00)). The update timer fires then and only then. A drop-in of the timer, C(50-immutable-hosts.conf) under
                C(/etc/systemd/system/TIMER.d/), resets the distribution's triggers (C(OnBootSec), C(OnUnitInactiveSec),
                C(OnCalendar)). The expression is checked with C(systemd-analyze calendar) on the host, in check mode too.
              - An empty string removes the drop-in, back to the distribution's schedule. Unset leaves it as it is.
            type: str
      wait_timeout:
        description:
          - Seconds to wait while another rpm-ostree transaction runs (GNOME Software, the automatic update timer), polling
            the status, before failing with the busy transaction's name.
        type: int
        default: 600
      bypass_driver:
        description:
          - Act even though an update driver such as Zincati is registered and active. Without it the module fails before
            changing anything.
        type: bool
        default: false
  users:
    description:
      - Rootless users, each with its Podman secrets, registry credentials and Quadlet units. Each takes the options of
        M(immutable.hosts.rootless_user), and C(secrets), C(registry_auth) and C(quadlets).
    type: list
    elements: dict
    default: []
    suboptions:
      create:
        description:
          - Create the user (C(useradd --create-home)) when missing. Without it a missing user fails the task.
          - C(useradd) may add subordinate ids itself (shadow's C(SUB_UID_COUNT)); they are counted before any is added.
        type: bool
        default: false
      linger:
        description:
          - Keep the user's systemd instance running without a login session (C(loginctl enable-linger)).
        type: bool
        default: true
      name:
        description:
          - The login name.
        type: str
        required: true
      state:
        description:
          - V(present) ensures the ranges and the linger setting.
          - V(absent) removes every subordinate id entry of the user (by name and by uid) and turns linger off. The account
            itself is never removed.
        type: str
        choices:
          - present
          - absent
        default: present
      subgid_count:
        description:
          - The number of subordinate gids the user needs.
        type: int
        default: 65536
      subuid_count:
        description:
          - The number of subordinate uids the user needs.
        type: int
        default: 65536
      secrets:
        description:
          - The user's Podman secrets.
          - Each takes the options of M(immutable.hosts.podman_secret), except C(user).
        type: list
        suboptions:
          data:
            description:
              - The secret's content, as text. Required with C(state).
              - Never logged (C(no_log)); the diff only says whether the data on the host is the wanted one.
            type: str
          name:
            description:
              - The secret's name (letters, digits, C(_.-), at most 253 characters).
            type: str
            required: true
          state:
            description:
              - V(present) keeps the secret with C(data); V(absent) removes it.
            type: str
            choices: &id002
              - present
              - absent
            default: present
        elements: dict
        default: []
      registry_auth:
        description:
          - The user's registry credentials (C(containers/auth.json)), what rootless Podman pulls with.
          - Each takes the options of M(immutable.hosts.registry_auth), except C(scope), C(user).
        type: list
        suboptions:
          password:
            description:
              - The password or token. Required with C(state). Never logged or shown.
            type: str
          path:
            description:
              - With C(scope), another file (for example C(/run/ostree/auth.json), which does not survive a reboot).
            type: path
          registry:
            description:
              - The registry, as C(host[:port]), optionally with a namespace or repository (C(registry.example.com:5000/team)),
                as pulls name it.
            type: str
            required: true
          state:
            description:
              - V(present) stores the credentials; V(absent) removes the registry's entry.
            type: str
            choices: *id001
            default: present
          username:
            description:
              - The user name. Required with C(state).
            type: str
        elements: dict
        default: []
      quadlets:
        description:
          - The user's Quadlet units.
          - Each takes the options of M(immutable.hosts.quadlet), except C(user).
        type: list
        suboptions:
          build:
            description:
              - The C([Build]) section (C(kind)), as for C(container).
            type: dict
          container:
            description:
              - "The C([Container]) section (C(kind)), as snake_case options mapped to Quadlet keys, for example C(image)\
                \ \u2192 C(Image), C(publish_port) \u2192 C(PublishPort), C(podman_args) \u2192 C(PodmanArgs). The Quadlet\
                \ key itself (C(PublishPort)) is accepted too."
              - A list renders as repeated keys. C(environment), C(label), C(annotation), C(sysctl) and C(log_opt) also
                take a mapping, rendered as C(KEY=VALUE) entries sorted by key.
              - For C(exec), C(podman_args), C(global_args) and the other keys Podman splits into words, a string is written
                as given and a list is one argument per item, quoted as needed.
              - C(%) starts a systemd specifier (C(%h), C(%t)); write C(%%) for a literal percent sign.
            type: dict
          content:
            description:
              - The whole unit file as text, instead of the structured options. It must parse, contain the kind's section
                and use podman 5.4 Quadlet keys.
              - Mutually exclusive with the section options and C(enabled).
            type: str
          enabled:
            description:
              - Whether the unit starts at boot (system) or when the user's instance starts (user). Generated units cannot
                be enabled with C(systemctl enable); Quadlet enables them through the C([Install]) section, so V(true) adds
                C(WantedBy=default.target) (user) or C(WantedBy=multi-user.target) (system) unless C(install) names a target,
                and V(false) refuses an C(install) section.
              - Unset leaves the C([Install]) section as C(install) gives it.
            type: bool
          image:
            description:
              - The C([Image]) section (C(kind)), as for C(container).
            type: dict
          install:
            description:
              - The C([Install]) section (C(wanted_by), C(required_by), C(upheld_by), C(alias), C(also), C(default_instance)).
            type: dict
          kind:
            description:
              - The Quadlet unit type, which is also the file's extension.
            type: str
            choices: &id003
              - container
              - pod
              - volume
              - network
              - kube
              - image
              - build
            default: container
          kube:
            description:
              - The C([Kube]) section (C(kind)), as for C(container).
            type: dict
          name:
            description:
              - The unit's base name, without extension; the file is C(name).C(kind).
              - A plain systemd unit name (letters, digits, C(_.:@-)); never a path.
            type: str
            required: true
          network:
            description:
              - The C([Network]) section (C(kind)), as for C(container); C(options) also takes a mapping.
            type: dict
          pod:
            description:
              - The C([Pod]) section (C(kind)), as for C(container).
            type: dict
          quadlet:
            description:
              - The C([Quadlet]) section, for example C(default_dependencies=false).
            type: dict
          restart_on_change:
            description:
              - Restart a running service when the unit's content changed.
            type: bool
            default: true
          service:
            description:
              - The C([Service]) section, passed to the generated service, as for C(unit).
            type: dict
          started:
            description:
              - V(true) starts the generated service when it is not running; V(false) stops it.
              - Unset means V(true), except for C(kind), whose service runs a build and exits.
            type: bool
          state:
            description:
              - V(present) writes the unit; V(absent) stops its service, removes the file and reloads.
            type: str
            choices: &id004
              - present
              - absent
            default: present
          unit:
            description:
              - The C([Unit]) section, passed to the generated service. Keys in snake_case (C(description), C(after)) or
                in systemd's spelling (C(Description)); values written as given.
            type: dict
          validate:
            description:
              - Validate the candidate unit with Podman's Quadlet generator (C(quadlet -dryrun), with C(-user) for user
                units) before writing it, when the generator is installed (C(/usr/libexec/podman/quadlet) or the systemd
                generator links). A rejected unit fails the task with the generator's own message, and nothing is written.
              - Without the generator the unit is checked against the key table only; C(validated) says which happened.
            type: bool
            default: true
          volume:
            description:
              - The C([Volume]) section (C(kind)), as for C(container).
            type: dict
        elements: dict
        default: []
  flatpak:
    description:
      - Flatpak installations (the system's, a user's or a custom one), each with its remotes, apps and overrides. C(scope),
        C(user) and C(installation) pick the installation as in M(immutable.hosts.flatpak).
    type: list
    elements: dict
    default: []
    suboptions:
      scope:
        description:
          - V(system) for the system-wide installation, V(user) for the per-user one of the user the module runs as (or
            of C(user)). Defaults to V(user) when C(user) is set, else V(system).
        type: str
        choices:
          - system
          - user
      user:
        description:
          - Manage this user's per-user installation. flatpak runs as that user through C(runuser -u USER --), with C(HOME),
            C(USER) and C(LOGNAME) from the passwd entry and C(XDG_RUNTIME_DIR=/run/user/UID) plus its session bus when
            they exist. Needs root (C(become=true)).
        type: str
        aliases:
          - name
      installation:
        description:
          - A custom system-wide installation by name (C(/etc/flatpak/installations.d/*.conf)).
        type: str
      remotes:
        description:
          - The installation's remotes.
          - Each takes the options of M(immutable.hosts.flatpak_remote), except C(scope), C(user), C(installation).
        type: list
        suboptions:
          allow_insecure:
            description:
              - Confirms C(gpg_verify) is intended.
              - Also confirms a C(flatpakrepo_url) over plain C(http://) whose C(GPGKey) would become the remote's key (without
                C(gpg_key)); anyone on the network path could swap that key, so it is refused otherwise, and warned about
                when confirmed.
            type: bool
            default: false
          collection_id:
            description:
              - Collection ID of the remote (needs GPG verification).
            type: str
          comment:
            description:
              - One-line comment of the remote.
            type: str
          enabled:
            description:
              - Whether the remote is enabled. Fedora ships C(flathub) disabled.
            type: bool
            default: true
          filter:
            description:
              - Absolute path of a local filter file on the managed host. Mutually exclusive with C(no_filter).
            type: path
          flatpakrepo_url:
            description:
              - URL (C(http://), C(https://), C(file://)) or absolute path of a C(.flatpakrepo) file. Its C(Url), C(GPGKey),
                C(Title), C(Comment) and collection ID are the defaults of C(url), C(gpg_key), C(title), C(comment) and
                C(collection_id); explicit options win. The file is read on every run, also in check mode.
            type: str
          gpg_key:
            description:
              - The repository's public GPG key, as a path to a key file (binary or ASCII armour) on the managed host, or
                inline ASCII armour (C(-----BEGIN PGP PUBLIC KEY BLOCK-----)).
              - Compared by fingerprint with the remote's keyring; a missing key is imported with C(--gpg-import). Keys
                already in the keyring are not removed. Diffs and results show fingerprints, never the key.
            type: str
          gpg_verify:
            description:
              - Verify the repository's signatures. Turning it off needs C(allow_insecure).
            type: bool
            default: true
          name:
            description:
              - Name of the remote.
            type: str
            required: true
          no_filter:
            description:
              - Make sure the remote has no filter (Fedora ships C(flathub) filtered).
            type: bool
            default: false
          priority:
            description:
              - Priority of the remote (higher wins; flatpak's default is 1).
            type: int
          state:
            description:
              - Whether the remote is present or absent. Removal uses C(remote-delete --force); installed refs stay.
            type: str
            choices:
              - present
              - absent
            default: present
          title:
            description:
              - Title of the remote (C(xa.title)).
            type: str
          url:
            description:
              - URL of the repository. Mutually exclusive with C(flatpakrepo_url).
              - Required to add a remote unless C(flatpakrepo_url) is given.
            type: str
        elements: dict
        default: []
      apps:
        description:
          - 'The installation''s apps and runtimes. Items that differ only in their refs are one resource: one C(flatpak
            install) (or C(uninstall)) for all of them.'
          - Each takes the options of M(immutable.hosts.flatpak), except C(scope), C(user), C(installation), C(exclusive),
            C(uninstall_unused).
        type: list
        suboptions:
          arch:
            description:
              - Arch of refs that do not name one. Defaults to the host's (C(x86_64), C(aarch64), ...).
            type: str
          name:
            description:
              - Refs, each C(ID), C(ID//BRANCH), C(ID/ARCH/BRANCH), C(app/ID/ARCH/BRANCH) or C(runtime/ID/ARCH/BRANCH).
              - Without a branch any installed branch matches, and flatpak installs the remote's default branch (it fails
                when the remote has several and none is the default; then give the branch).
            type: list
            elements: str
            required: true
          no_related:
            description:
              - Do not install or uninstall related refs (locales, debug info, extensions) with C(--no-related).
            type: bool
            default: false
          remote:
            description:
              - The remote to install from and that installed refs must come from. Required for V(present) and V(latest);
                with V(absent), only refs from this remote are removed when given.
            type: str
          state:
            description:
              - V(present) installs missing refs; V(latest) also updates installed refs that have a newer commit on the
                remote; V(absent) removes them.
            type: str
            choices:
              - present
              - absent
              - latest
            default: present
        elements: dict
        default: []
      apps_exclusive:
        description:
          - 'The installation''s apps are exactly the C(apps) not absent: every other app is uninstalled (runtimes stay).
            They must then all come from one remote.'
        type: bool
        default: false
      apps_latest:
        description:
          - Apps with C(state=present) are updated to their remote's latest commit too.
        type: bool
        default: false
      uninstall_unused:
        description:
          - Also uninstall the runtimes nothing uses any more (C(flatpak uninstall --unused)).
        type: bool
        default: false
      overrides:
        description:
          - The installation's sandbox overrides.
          - Each takes the options of M(immutable.hosts.flatpak_override), except C(scope), C(user), C(installation).
        type: list
        suboptions:
          app:
            description:
              - The application ID whose override is managed. Mutually exclusive with C(global).
            type: str
          devices:
            description:
              - Devices to expose (C(dri), C(input), C(usb), C(kvm), C(shm), C(all)).
            type: list
            elements: str
            default: []
          environment:
            description:
              - Environment variables to set in the sandbox.
            type: dict
            default: {}
          features:
            description:
              - Features to allow (C(devel), C(multiarch), C(bluetooth), C(canbus), C(per-app-dev-shm)); C(!feature) disallows
                one.
            type: list
            elements: str
            default: []
          filesystems:
            description:
              - Filesystems to expose, as C(--filesystem) takes them (C(home), C(xdg-download:ro), C(~/src:create), C(/mnt/data:rw)).
            type: list
            elements: str
            default: []
          global:
            description:
              - Manage the override that applies to every app.
            type: bool
            default: false
          mode:
            description:
              - V(merge) sets the given entries and keeps the others (an entry replaces one of the same name, so C(home:ro)
                replaces C(home) and C(nosockets) replaces C(x11)); V(exact) makes the override exactly the given entries.
              - Unset, the installation's C(overrides_mode).
            type: str
            choices:
              - merge
              - exact
          nodevices:
            description:
              - Devices to deny.
            type: list
            elements: str
            default: []
          nofilesystems:
            description:
              - Filesystems to deny (C(--nofilesystem)), without a mode.
            type: list
            elements: str
            default: []
          nosockets:
            description:
              - Sockets to deny.
            type: list
            elements: str
            default: []
          own_names:
            description:
              - Session bus names the app may own.
            type: list
            elements: str
            default: []
          persist:
            description:
              - Home directory subpaths made persistent (C(--persist)), relative to the home directory.
            type: list
            elements: str
            default: []
          shares:
            description:
              - Subsystems to share with the host (C(network), C(ipc)).
            type: list
            elements: str
            default: []
          sockets:
            description:
              - Sockets to expose (C(wayland), C(x11), C(pulseaudio), C(ssh-auth), ...).
            type: list
            elements: str
            default: []
          state:
            description:
              - V(present) writes the entries; V(absent) removes the given entries, or resets the whole override (like C(flatpak
                override --reset)) when none are given.
            type: str
            choices:
              - present
              - absent
            default: present
          system_talk_names:
            description:
              - System bus names the app may talk to.
            type: list
            elements: str
            default: []
          talk_names:
            description:
              - Session bus names the app may talk to.
            type: list
            elements: str
            default: []
          unset_environment:
            description:
              - Environment variables to unset in the sandbox.
            type: list
            elements: str
            default: []
          unshares:
            description:
              - Subsystems to unshare.
            type: list
            elements: str
            default: []
        elements: dict
        default: []
      overrides_mode:
        description:
          - The C(mode) of an override item that names none.
        type: str
        choices:
          - merge
          - exact
        default: merge
  secrets:
    description:
      - Podman secrets, root's or (with C(user)) a rootless user's, converged before any Quadlet unit.
      - Each takes the options of M(immutable.hosts.podman_secret).
    type: list
    suboptions:
      data:
        description:
          - The secret's content, as text. Required with C(state).
          - Never logged (C(no_log)); the diff only says whether the data on the host is the wanted one.
        type: str
      name:
        description:
          - The secret's name (letters, digits, C(_.-), at most 253 characters).
        type: str
        required: true
      state:
        description:
          - V(present) keeps the secret with C(data); V(absent) removes it.
        type: str
        choices: *id002
        default: present
      user:
        description:
          - The rootless user whose secret this is. Unset, the secret is root's (the system's rootful containers).
          - Root acting for another user needs C(become=true).
        type: str
    elements: dict
    default: []
  quadlets:
    description:
      - Quadlet units, the system's or (with C(user)) a rootless user's, converged after every secret.
      - Each takes the options of M(immutable.hosts.quadlet).
    type: list
    suboptions:
      build:
        description:
          - The C([Build]) section (C(kind)), as for C(container).
        type: dict
      container:
        description:
          - "The C([Container]) section (C(kind)), as snake_case options mapped to Quadlet keys, for example C(image) \u2192\
            \ C(Image), C(publish_port) \u2192 C(PublishPort), C(podman_args) \u2192 C(PodmanArgs). The Quadlet key itself\
            \ (C(PublishPort)) is accepted too."
          - A list renders as repeated keys. C(environment), C(label), C(annotation), C(sysctl) and C(log_opt) also take
            a mapping, rendered as C(KEY=VALUE) entries sorted by key.
          - For C(exec), C(podman_args), C(global_args) and the other keys Podman splits into words, a string is written
            as given and a list is one argument per item, quoted as needed.
          - C(%) starts a systemd specifier (C(%h), C(%t)); write C(%%) for a literal percent sign.
        type: dict
      content:
        description:
          - The whole unit file as text, instead of the structured options. It must parse, contain the kind's section and
            use podman 5.4 Quadlet keys.
          - Mutually exclusive with the section options and C(enabled).
        type: str
      enabled:
        description:
          - Whether the unit starts at boot (system) or when the user's instance starts (user). Generated units cannot be
            enabled with C(systemctl enable); Quadlet enables them through the C([Install]) section, so V(true) adds C(WantedBy=default.target)
            (user) or C(WantedBy=multi-user.target) (system) unless C(install) names a target, and V(false) refuses an C(install)
            section.
          - Unset leaves the C([Install]) section as C(install) gives it.
        type: bool
      image:
        description:
          - The C([Image]) section (C(kind)), as for C(container).
        type: dict
      install:
        description:
          - The C([Install]) section (C(wanted_by), C(required_by), C(upheld_by), C(alias), C(also), C(default_instance)).
        type: dict
      kind:
        description:
          - The Quadlet unit type, which is also the file's extension.
        type: str
        choices: *id003
        default: container
      kube:
        description:
          - The C([Kube]) section (C(kind)), as for C(container).
        type: dict
      name:
        description:
          - The unit's base name, without extension; the file is C(name).C(kind).
          - A plain systemd unit name (letters, digits, C(_.:@-)); never a path.
        type: str
        required: true
      network:
        description:
          - The C([Network]) section (C(kind)), as for C(container); C(options) also takes a mapping.
        type: dict
      pod:
        description:
          - The C([Pod]) section (C(kind)), as for C(container).
        type: dict
      quadlet:
        description:
          - The C([Quadlet]) section, for example C(default_dependencies=false).
        type: dict
      restart_on_change:
        description:
          - Restart a running service when the unit's content changed.
        type: bool
        default: true
      service:
        description:
          - The C([Service]) section, passed to the generated service, as for C(unit).
        type: dict
      started:
        description:
          - V(true) starts the generated service when it is not running; V(false) stops it.
          - Unset means V(true), except for C(kind), whose service runs a build and exits.
        type: bool
      state:
        description:
          - V(present) writes the unit; V(absent) stops its service, removes the file and reloads.
        type: str
        choices: *id004
        default: present
      unit:
        description:
          - The C([Unit]) section, passed to the generated service. Keys in snake_case (C(description), C(after)) or in
            systemd's spelling (C(Description)); values written as given.
        type: dict
      user:
        description:
          - Manage a rootless unit of this user, under C(~/.config/containers/systemd/) and the user's systemd instance.
            The user needs linger (M(immutable.hosts.rootless_user)) for the unit to run without a login session.
          - Unset manages a system unit under C(/etc/containers/systemd/).
        type: str
      validate:
        description:
          - Validate the candidate unit with Podman's Quadlet generator (C(quadlet -dryrun), with C(-user) for user units)
            before writing it, when the generator is installed (C(/usr/libexec/podman/quadlet) or the systemd generator
            links). A rejected unit fails the task with the generator's own message, and nothing is written.
          - Without the generator the unit is checked against the key table only; C(validated) says which happened.
        type: bool
        default: true
      volume:
        description:
          - The C([Volume]) section (C(kind)), as for C(container).
        type: dict
    elements: dict
    default: []
# END GENERATED OPTIONS
"""
