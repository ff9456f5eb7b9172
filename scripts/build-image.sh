#!/usr/bin/env bash
# Build a PostgreSQL image locally, for machines whose Docker engine cannot reach a registry.
# Equivalent to the official postgres:<major> image for pgrehearse's purposes: Debian's
# postgresql-<major> package at /usr/lib/postgresql/<major>/bin, plus iproute2 and iptables
# for network faults. The harness does its own initdb/start, so no entrypoint is needed.
#
#   scripts/build-image.sh [MAJOR]      # 17 (default) or 18; tags pgrehearse/postgres:<MAJOR>
set -euo pipefail

major="${1:-17}"
tag="pgrehearse/postgres:${major}"
# The Debian release that carries each major (Debian ships one PostgreSQL per release).
case "$major" in
  17) default_suite=trixie ;;
  18) default_suite=forky ;;
  *)
    if [ -z "${PGREHEARSE_IMAGE_SUITE:-}" ]; then
      echo "no Debian release carries postgresql-$major: use the official postgres:$major image where a registry is reachable, build 17 or 18, or name a suite that has it with PGREHEARSE_IMAGE_SUITE" >&2
      exit 2
    fi ;;
esac
suite="${PGREHEARSE_IMAGE_SUITE:-$default_suite}"
mirror="${PGREHEARSE_IMAGE_MIRROR:-http://deb.debian.org/debian}"

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "image $tag already exists"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "building the image needs root (debootstrap, chroot); re-run with sudo" >&2
  exit 2
fi
if ! command -v debootstrap >/dev/null; then
  echo "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

start=$(date +%s)
root="$(mktemp -d /var/tmp/pgrehearse-image.XXXXXX)"
# Unmount before removing: never let rm walk into a mounted /proc.
trap 'umount "$root/proc" 2>/dev/null || true; rm -rf --one-file-system "$root"' EXIT
# mktemp makes the folder 0700; it becomes the image's "/", which every user must traverse.
chmod 755 "$root"

echo "debootstrap $suite into $root"
# An older debootstrap may not know a newer suite by name; every current suite builds with sid's script.
script=/usr/share/debootstrap/scripts/$suite
[ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" "$script" >"$root.log" 2>&1; then
  tail -20 "$root.log" >&2
  rm -f "$root.log"
  echo "debootstrap of $suite failed" >&2
  exit 1
fi
rm -f "$root.log"
# The chroot follows this machine's apt policy on Release-file dates: a host that talks to a
# frozen mirror (and accepts its expired Release files) builds from the same mirror.
apt_opts=""
if apt-config dump 2>/dev/null | grep '^Acquire::Check-Valid-Until "false"' >/dev/null; then  # no -q: with pipefail, an early exit would fail apt-config
  apt_opts="-o Acquire::Check-Valid-Until=false -o Acquire::Check-Date=false"
fi
echo "installing postgresql-$major, iproute2, iptables"
# Newer postgresql-common runs systemd-tmpfiles in its postinst, which needs /proc.
mount -t proc proc "$root/proc"
chroot "$root" /bin/sh -c "
  set -e
  export DEBIAN_FRONTEND=noninteractive
  # No default cluster: pgrehearse runs initdb itself, in its own data directory.
  mkdir -p /etc/postgresql-common
  echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf
  apt-get $apt_opts update -qq
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold \
    postgresql-$major iproute2 iptables procps ca-certificates >/dev/null
  apt-get clean
  rm -rf /var/lib/apt/lists/*
  # The package's own cluster is not used: pgrehearse runs initdb itself.
  rm -rf /var/lib/postgresql/$major/main /etc/postgresql/$major/main
"
umount "$root/proc"
version="$(chroot "$root" /usr/lib/postgresql/$major/bin/postgres --version)"
echo "packing ($version)"
tar -C "$root" -c . | docker import \
  -c "ENV PATH=/usr/lib/postgresql/$major/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  -c "ENV PG_MAJOR=$major" \
  -c "ENV LANG=C.UTF-8" \
  -c 'CMD ["sleep", "infinity"]' \
  -c "LABEL org.pgrehearse.pg-version=\"$version\"" \
  - "$tag" >/dev/null
echo "built $tag ($version) in $(( $(date +%s) - start ))s"
