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
trap 'rm -rf "$root"' EXIT
# mktemp makes the folder 0700; it becomes the image's "/", which every user must traverse.
chmod 755 "$root"

echo "debootstrap $suite into $root"
debootstrap --variant=minbase "$suite" "$root" "$mirror" >/dev/null
echo "installing postgresql-$major, iproute2, iptables"
chroot "$root" /bin/sh -c "
  set -e
  export DEBIAN_FRONTEND=noninteractive
  # No default cluster: pgrehearse runs initdb itself, in its own data directory.
  mkdir -p /etc/postgresql-common
  echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold \
    postgresql-$major iproute2 iptables procps ca-certificates >/dev/null
  apt-get clean
  rm -rf /var/lib/apt/lists/*
  # The package's own cluster is not used: pgrehearse runs initdb itself.
  rm -rf /var/lib/postgresql/$major/main /etc/postgresql/$major/main
"
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
