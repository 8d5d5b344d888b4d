#!/usr/bin/env bash
# Make sure a Docker engine answers and a Debian base image exists (../shared/ENVIRONMENT.md).
# Idempotent: a running engine and an existing image are reused, so a second run costs ~1 s.
set -euo pipefail

log() { printf '[engine] %s\n' "$*" >&2; }

engine_up() { docker info >/dev/null 2>&1; }

if ! engine_up; then
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io (no engine on this machine)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io >/dev/null
  fi
  log "starting dockerd"
  nohup dockerd >/tmp/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    engine_up && break
    sleep 1
  done
  engine_up || { log "dockerd did not answer within 60 s; see /tmp/dockerd.log"; tail -n 30 /tmp/dockerd.log >&2; exit 1; }
fi
log "engine answers: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"

# Base image for every Dockerfile in images/. Pull it where a registry answers, else build it
# from Debian's own mirror with debootstrap (the mirror apt already uses; never hard-coded).
BASE=debian:bookworm-slim
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  if timeout 60 docker pull -q "$BASE" >/dev/null 2>&1; then
    log "pulled $BASE"
  else
    mirror=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
      mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
    fi
    [ -n "$mirror" ] || { log "cannot find the Debian mirror apt uses"; exit 1; }
    command -v debootstrap >/dev/null 2>&1 || {
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
    }
    rootfs=$(mktemp -d /tmp/cdb-rootfs.XXXXXX)
    log "building $BASE with debootstrap from $mirror"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/tmp/debootstrap.log 2>&1 \
      || { tail -n 30 /tmp/debootstrap.log >&2; exit 1; }
    # debootstrap leaves the downloaded .debs and apt lists behind (~85 MB): not part of a base image.
    # `docker import` keeps no ENV, so the image gets the PATH a pulled debian image has.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' - "$BASE" >/dev/null
    rm -rf "$rootfs"
    log "imported $BASE"
  fi
fi
