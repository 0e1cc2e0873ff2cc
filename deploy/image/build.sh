#!/usr/bin/env bash
# Builds trustgate's container image with buildah (no daemon; Debian's package). When the
# Dockerfile's base images can be pulled it builds the Dockerfile; otherwise (no registry
# reachable) it assembles the same final image from scratch: the static binary built here, the
# CA certificates of this machine, a non-root user (65532), /data owned by it, and the
# Dockerfile's configuration (user, environment, volume, ports, health check, entrypoint).
#
# Usage: build.sh [NAME]          (default trustgate:$VERSION)
# Environment: VERSION (default dev); IMAGE_FROM=auto|dockerfile|scratch (default auto: the
# Dockerfile when its base images can be pulled); TRUSTGATE_IMAGE_BINARY, a static trustgate
# binary to put in the image instead of building one; CA_BUNDLE (default
# /etc/ssl/certs/ca-certificates.crt); STORAGE_DRIVER, given to buildah as --storage-driver
# (default: its configured storage; vfs works as root anywhere, also inside a container).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=${VERSION:-dev}
NAME=${1:-trustgate:$VERSION}
FROM=${IMAGE_FROM:-auto}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
bh() { buildah ${STORAGE_DRIVER:+--storage-driver "$STORAGE_DRIVER"} "$@"; }
# Docker's image format: OCI's has no HEALTHCHECK.
export BUILDAH_FORMAT=docker

log() { printf 'image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
command -v buildah >/dev/null || die "buildah is not installed (Debian: apt-get install buildah)"

if [ "$FROM" = auto ]; then
	FROM=dockerfile
	for base in $(awk '/^FROM /{print $2}' "$REPO/Dockerfile"); do
		if ! timeout 120 buildah ${STORAGE_DRIVER:+--storage-driver "$STORAGE_DRIVER"} pull -q "$base" >/dev/null 2>&1; then
			log "cannot pull $base: assembling the image from scratch"
			FROM=scratch
			break
		fi
	done
fi

if [ "$FROM" = dockerfile ]; then
	log "building $NAME from the Dockerfile"
	exec buildah ${STORAGE_DRIVER:+--storage-driver "$STORAGE_DRIVER"} bud --format docker --build-arg "VERSION=$VERSION" -t "$NAME" -f "$REPO/Dockerfile" "$REPO"
fi
[ "$FROM" = scratch ] || die "IMAGE_FROM is auto, dockerfile or scratch, not $FROM"

WORK=$(mktemp -d)
CTR=
cleanup() {
	[ -z "$CTR" ] || bh rm "$CTR" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

ROOT=$WORK/rootfs
mkdir -p "$ROOT/usr/local/bin" "$ROOT/etc/ssl/certs" "$ROOT/data" "$ROOT/tmp" "$ROOT/home/nonroot"
if [ -n "${TRUSTGATE_IMAGE_BINARY:-}" ]; then
	cp "$TRUSTGATE_IMAGE_BINARY" "$ROOT/usr/local/bin/trustgate"
else
	log "building the static binary"
	(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION" \
		-o "$ROOT/usr/local/bin/trustgate" ./cmd/trustgate)
fi
# The image has no C library: a dynamically linked binary would not start.
if LC_ALL=C od -An -c -N 4096 "$ROOT/usr/local/bin/trustgate" | tr -d ' \n' | grep -q 'ld-linux'; then
	die "the binary is dynamically linked; build it with CGO_ENABLED=0"
fi
[ -s "$CA_BUNDLE" ] || die "no CA certificates at $CA_BUNDLE (set CA_BUNDLE)"
cp "$CA_BUNDLE" "$ROOT/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$ROOT/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$ROOT/etc/group"
chmod 1777 "$ROOT/tmp"

log "assembling $NAME from scratch"
CTR=$(bh from scratch)
# Local tar archives are unpacked with the owners they record: the files root's, the data and
# home directories the non-root user's (no chown needed, so it works without root too).
tar -C "$ROOT" --numeric-owner --owner=0 --group=0 --exclude=./data --exclude=./home/nonroot -cf "$WORK/root.tar" .
tar -C "$ROOT" --numeric-owner --owner=65532 --group=65532 -cf "$WORK/nonroot.tar" ./data ./home/nonroot
bh add --quiet "$CTR" "$WORK/root.tar" / >/dev/null
bh add --quiet "$CTR" "$WORK/nonroot.tar" / >/dev/null
# The same configuration as the Dockerfile's final stage (tests/image_test.go compares them).
bh config \
	--user 65532:65532 \
	--env TRUSTGATE_LISTEN=0.0.0.0:8080 --env TRUSTGATE_DATA_DIR=/data --env TRUSTGATE_METRICS_LISTEN=0.0.0.0:9464 \
	--volume /data --port 8080/tcp --port 9464/tcp \
	--healthcheck 'CMD /usr/local/bin/trustgate healthcheck --url http://127.0.0.1:8080/readyz' \
	--healthcheck-interval 10s --healthcheck-timeout 5s --healthcheck-start-period 120s --healthcheck-retries 3 \
	--entrypoint '["/usr/local/bin/trustgate"]' --cmd serve \
	--label "org.opencontainers.image.version=$VERSION" --label "org.opencontainers.image.title=trustgate" \
	"$CTR"
bh commit --quiet --format docker --rm "$CTR" "$NAME" >/dev/null
CTR=
log "built $NAME"
