# tidepool: PgBouncer-compatible PostgreSQL connection pooler, as a small static image.
#
#   docker build -t tidepool .
#   docker-compose -f docker-compose-pgbouncer.yml up -d pgbouncer
#
# Two stages: Alpine builds two fully static binaries with `make static` (the daemon and
# tidepool-entrypoint); the runtime stage is Alpine with tini (PID 1), psql, CA certificates
# and a fixed non-root user. Works with the legacy builder (no BuildKit-only syntax).
#
# Base images are build arguments. The defaults are the real Alpine images; our CI, which has no
# registry, passes Debian stand-ins made by docker/make-base-images.sh that already contain the
# packages. So the install steps below use apk when it exists, and otherwise only check that the
# tools they need are already there (no network is needed in that case).
ARG BUILDER_IMAGE=alpine:3.20
ARG RUNTIME_IMAGE=alpine:3.20

FROM ${BUILDER_IMAGE} AS build
LABEL org.tidepool.stage="build"
RUN set -e; \
    if command -v apk >/dev/null 2>&1; then \
        apk add --no-cache build-base linux-headers pkgconf libevent-dev libevent-static \
            openssl-dev openssl-libs-static; \
    else \
        echo "no apk: using the build packages already in the base image"; \
    fi; \
    for tool in make cc pkg-config strip; do \
        command -v "$tool" >/dev/null 2>&1 || { echo "the build image lacks $tool" >&2; exit 1; }; \
    done
COPY . /src/
# Static glibc (the Debian stand-in) warns that getpwnam/getaddrinfo need glibc's NSS at run
# time: the image never needs them (the container starts as the non-root user, so the daemon
# does not switch users; listen addresses are numeric; server host names are resolved by
# libevent's own resolver from /etc/hosts and resolv.conf). musl has no such caveat.
RUN cd /src \
    && make static -j"$(nproc 2>/dev/null || echo 2)" \
    && strip build-static/tidepool build-static/tidepool-entrypoint \
    && ./build-static/tidepool-entrypoint --version \
    && ./build-static/tidepool --version

FROM ${RUNTIME_IMAGE}
# Metadata first: these steps stay cached when only the binaries change.
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="tidepool" \
      org.opencontainers.image.description="PgBouncer-compatible PostgreSQL connection pooler: static binaries, tini, non-root, healthcheck" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.documentation="docker/README.md in the source tree"
ENV HOME=/var/lib/tidepool
EXPOSE 6432
# SIGINT is the pooler's "safe shutdown": stop accepting, let every in-flight transaction
# finish, close the server connections, exit. That fits within docker stop's grace period.
# (SIGTERM means "wait until every client disconnects", which an application's idle pool never
# does, so docker stop would end in SIGKILL; SIGQUIT would cut transactions off.)
STOPSIGNAL SIGINT
# Proves the pooler answers the PostgreSQL protocol on its port; needs no password.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/tidepool-entrypoint", "--healthcheck"]
ENTRYPOINT ["/sbin/tini", "--", "/usr/local/bin/tidepool-entrypoint"]
CMD []
ARG TIDEPOOL_UID=10001
ARG TIDEPOOL_GID=10001
RUN set -e; \
    if command -v apk >/dev/null 2>&1; then \
        apk add --no-cache tini ca-certificates postgresql-client; \
    fi; \
    for tool in tini psql; do \
        command -v "$tool" >/dev/null 2>&1 || { echo "the runtime image lacks $tool" >&2; exit 1; }; \
    done; \
    [ -x /sbin/tini ] || ln -s "$(command -v tini)" /sbin/tini; \
    if [ -f /etc/alpine-release ]; then \
        addgroup -S -g "${TIDEPOOL_GID}" tidepool; \
        adduser -S -D -H -u "${TIDEPOOL_UID}" -G tidepool -h /var/lib/tidepool -s /sbin/nologin tidepool; \
    else \
        groupadd --gid "${TIDEPOOL_GID}" tidepool; \
        useradd --uid "${TIDEPOOL_UID}" --gid tidepool --home-dir /var/lib/tidepool \
            --no-create-home --shell /usr/sbin/nologin tidepool; \
    fi; \
    mkdir -p /etc/pgbouncer /var/lib/tidepool; \
    chown "${TIDEPOOL_UID}:${TIDEPOOL_GID}" /etc/pgbouncer /var/lib/tidepool; \
    chmod 0700 /etc/pgbouncer /var/lib/tidepool
COPY --from=build /src/build-static/tidepool /src/build-static/tidepool-entrypoint /usr/local/bin/
USER ${TIDEPOOL_UID}:${TIDEPOOL_GID}
