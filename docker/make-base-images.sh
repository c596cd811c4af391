#!/bin/sh
# make-base-images.sh: build the two local Debian stand-ins for the Dockerfile's Alpine base
# images (no registry is reachable on our machines), or reuse them when they already exist.
#   tidepool-base/build:bookworm    compiler, make, pkg-config, static libevent and OpenSSL
#   tidepool-base/runtime:bookworm  tini, postgresql-client, ca-certificates
# Uses mmdebstrap with the machine's own apt sources (about 80 s per image), then docker import.
# Usage: docker/make-base-images.sh [--force]
set -eu

BUILD_IMAGE=${TIDEPOOL_BUILD_BASE:-tidepool-base/build:bookworm}
RUNTIME_IMAGE=${TIDEPOOL_RUNTIME_BASE:-tidepool-base/runtime:bookworm}
SUITE=${TIDEPOOL_BASE_SUITE:-bookworm}
force=0
[ "${1:-}" = "--force" ] && force=1

make_image() { # name packages
	name=$1
	pkgs=$2
	if [ "$force" = 0 ] && docker image inspect "$name" >/dev/null 2>&1; then
		echo "base image $name: cached"
		return 0
	fi
	command -v mmdebstrap >/dev/null 2>&1 || {
		echo "mmdebstrap is missing: apt-get install -y mmdebstrap" >&2
		exit 1
	}
	tmp=$(mktemp -d /tmp/tidepool-base.XXXXXX)
	start=$(date +%s)
	echo "base image $name: mmdebstrap $SUITE with $pkgs"
	# No docs, man pages or locales; no recommends; apt lists removed: smaller images.
	# shellcheck disable=SC2016 # "$1" is the hook's argument, expanded by mmdebstrap
	if ! mmdebstrap --variant=apt --include="$pkgs" \
		--aptopt='APT::Install-Recommends "false"' \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
		"$SUITE" "$tmp/base.tar" >"$tmp/log" 2>&1; then
		tail -n 30 "$tmp/log" >&2
		rm -rf "$tmp"
		echo "mmdebstrap failed for $name" >&2
		exit 1
	fi
	docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		"$tmp/base.tar" "$name" >/dev/null
	rm -rf "$tmp"
	echo "base image $name: made in $(($(date +%s) - start)) s"
}

make_image "$BUILD_IMAGE" "build-essential,pkg-config,libevent-dev,libssl-dev"
make_image "$RUNTIME_IMAGE" "tini,postgresql-client,ca-certificates"
