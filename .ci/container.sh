#!/usr/bin/env bash
# CI's container step (called by .ci/run): builds the project's image with podman and runs it as users would.
#
#   1. podman, runc and debootstrap from Debian when missing; /etc/containers/containers.conf gets what podman needs
#      on this kind of machine (runc, cgroupfs, explicit ulimits) when it lacks them.
#   2. node:24-bookworm-slim, built locally since CI reaches no container registry: Debian 12 (debootstrap minbase,
#      slimmed like debian:bookworm-slim) plus the Node.js binary and npm on PATH (Node 24, from .ci/node.sh) and a
#      `node` user, tagged docker.io/library/node:24-bookworm-slim. The debootstrapped Debian is kept in
#      $WAMT_CI_CACHE (default /var/cache/wamt-ci, refreshed after 30 days) and the image in podman's storage,
#      keyed by the Node and npm versions: a warm run builds neither.
#   3. podman build of Containerfile (layers cached between runs), and the image's size and configuration.
#   4. podman run on the sandbox engine with a named volume for /data (embedded PGlite there), then over HTTP:
#      /health/ready, a session created, its QR code scanned through the sandbox routes, one message sent
#      (scripts/smoke.ts against the running container); the service's process runs as a non-root user; Chromium
#      starts in the image; the HEALTHCHECK passes; `podman stop` ends it with exit code 0 within 10 s.
#
# Every step is bounded in time; the container, its volume and the temporary files are removed whatever happens.
# Prints "container: ok" at the end, or "container: FAILED: …" with the container's log, and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=docker.io/library/node:24-bookworm-slim
BASE_MINBASE=localhost/wamt-ci/bookworm-minbase
IMAGE=localhost/wamt:ci
CACHE_DIR="${WAMT_CI_CACHE:-/var/cache/wamt-ci}"
DEBIAN_MIRROR="${WAMT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Bumped when the way the stand-in base is made changes, so that a cached one is made again.
BASE_RECIPE=1
STOP_LIMIT_S=10

started=$(date +%s)
last=$started
step() {
  local now
  now=$(date +%s)
  echo "container: $* ($((now - last)) s)"
  last=$now
}
fail() {
  echo "container: FAILED: $*" >&2
  exit 1
}

export DEBIAN_FRONTEND=noninteractive

# ------------------------------------------------------------------------------------------------------------ tools
install_tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || missing+=(runc)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "container: installing ${missing[*]}"
    timeout 300 apt-get update -qq || true
    timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  step "podman $(podman --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}')"
}

# Adds `key = value` to [section] of containers.conf unless the key is set there already.
conf_set() {
  local file=$1 section=$2 key=$3 value=$4
  if grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$file"; then return; fi
  if grep -q "^\[${section}\]" "$file"; then
    sed -i "/^\[${section}\]/a ${key} = ${value}" "$file"
  else
    printf '\n[%s]\n%s = %s\n' "$section" "$key" "$value" >>"$file"
  fi
  echo "container: containers.conf: [${section}] ${key} = ${value}"
}

# No systemd and cgroups v1 here: runc and cgroupfs. And explicit ulimits: by default podman asks runc for limits
# above what this machine lets a process raise them to (no CAP_SYS_RESOURCE), and the container fails to start with
# "error setting rlimits: operation not permitted". nofile: this shell's; nproc: this shell's, but no more than
# kernel.pid_max, the limit that podman leaves to conmon and so to the container (seen here: 32768).
configure_podman() {
  local conf=/etc/containers/containers.conf nofile nproc pid_max
  mkdir -p /etc/containers
  [ -f "$conf" ] || printf '# podman on this machine (written by .ci/container.sh)\n' >"$conf"
  nofile=$(ulimit -Sn)
  nproc=$(ulimit -Su)
  pid_max=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)
  [ "$nofile" = unlimited ] && nofile=1048576
  if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; then nproc=$pid_max; fi
  conf_set "$conf" containers default_ulimits "[\"nofile=${nofile}:${nofile}\", \"nproc=${nproc}:${nproc}\"]"
  conf_set "$conf" engine runtime '"runc"'
  conf_set "$conf" engine cgroup_manager '"cgroupfs"'
  conf_set "$conf" engine events_logger '"file"'
}

# ------------------------------------------------------------------------------------------------------ base image
# Debian 12 as debian:bookworm-slim is: minbase, no docs, man pages or translations, apt's caches cleaned, the
# bookworm, bookworm-updates and bookworm-security suites. Kept as a tarball in the cache.
make_minbase_tar() {
  local tar=$1 root
  root=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
  echo "container: debootstrap --variant=minbase bookworm (a few minutes, once)"
  if ! timeout 900 debootstrap --variant=minbase bookworm "$root" "$DEBIAN_MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1; then
    tail -20 "$CACHE_DIR/debootstrap.log" >&2
    rm -rf "$root"
    fail "debootstrap failed (log: $CACHE_DIR/debootstrap.log)"
  fi
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
CFG
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
CFG
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<'CFG'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
CFG
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/{man,groff,info,lintian,linda,locale}/* "$root"/var/lib/apt/lists/* \
    "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old "$root"/var/log/* "$root"/tmp/* \
    "$root"/etc/hostname "$root"/etc/resolv.conf "$root"/etc/machine-id
  tar --numeric-owner --xattrs -C "$root" -cf "$tar.tmp" .
  mv "$tar.tmp" "$tar"
  rm -rf "$root"
}

ensure_base() {
  local node_bin npm_dir node_version npm_version key tar context
  node_bin=$(readlink -f "$(command -v node)")
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  node_version=$(node --version)
  npm_version=$(node "$npm_dir/bin/npm-cli.js" --version)
  [[ $node_version == v24.* ]] || fail "node on PATH is $node_version, expected Node 24 (source .ci/node.sh first)"
  key="bookworm-minbase/node-${node_version}/npm-${npm_version}/recipe-${BASE_RECIPE}"
  if [ "$(podman image inspect --format '{{index .Labels "wamt.ci.base"}}' "$BASE_IMAGE" 2>/dev/null)" = "$key" ]; then
    step "base $BASE_IMAGE: cached ($key)"
    return
  fi

  mkdir -p "$CACHE_DIR"
  tar="$CACHE_DIR/bookworm-minbase-r${BASE_RECIPE}.tar"
  if [ -z "$(find "$tar" -mtime -30 2>/dev/null)" ]; then
    make_minbase_tar "$tar"
    step "debootstrapped Debian 12 minbase: $(du -h "$tar" | cut -f1) in $tar"
  fi
  podman rmi -f "$BASE_MINBASE" >/dev/null 2>&1 || true
  timeout 300 podman import --quiet "$tar" "$BASE_MINBASE" >/dev/null

  # Node.js and npm where the official image has them, and its `node` user (uid 1000).
  context="$work/base"
  mkdir -p "$context"
  cp "$node_bin" "$context/node"
  cp -a "$npm_dir" "$context/npm"
  cat >"$context/Containerfile" <<CFG
FROM $BASE_MINBASE
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
    && groupadd --gid 1000 node \\
    && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
    && node --version && npm --version
ENV NODE_VERSION=${node_version#v}
LABEL wamt.ci.base="$key"
CMD ["node"]
CFG
  timeout 600 podman build --quiet --pull=never --network=host --format docker -t "$BASE_IMAGE" "$context" >/dev/null
  podman rmi "$BASE_MINBASE" >/dev/null 2>&1 || true
  step "base $BASE_IMAGE built ($key)"
}

# ------------------------------------------------------------------------------------------------------- the image
# This machine reaches the npm registry through a proxy with its own certificate authority: its certificates
# (WAMT_CI_EXTRA_CA, else the file in NODE_EXTRA_CA_CERTS, else the system's bundle, where such a CA is installed) go
# to `npm ci` as the build secret extra_ca, never into the image. Elsewhere they only repeat Node's own.
build_image() {
  local secret=() ca="${WAMT_CI_EXTRA_CA:-${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}}" old_id
  if [ -n "$ca" ] && [ -r "$ca" ]; then
    secret=(--secret "id=extra_ca,src=$ca")
    echo "container: npm ci trusts the certificates in $ca (build secret extra_ca)"
  fi
  old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  echo "container: podman build -f Containerfile -t $IMAGE"
  if ! timeout 1200 podman build --pull=never --network=host --format docker --layers "${secret[@]}" \
    -f Containerfile -t "$IMAGE" . >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log" >&2
    fail "podman build failed"
  fi
  local size id
  size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
  id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
  step "image $IMAGE built: $((size / 1000000)) MB (${id:0:12})"
  # The image of the previous run, and untagged leftovers older than a week: the layers still cached stay.
  if [ -n "$old_id" ] && [ "$old_id" != "$id" ]; then timeout 120 podman rmi "$old_id" >/dev/null 2>&1 || true; fi
  timeout 300 podman image prune -f --filter until=168h >/dev/null 2>&1 || true
}

# ----------------------------------------------------------------------------------------------- the image running
container=""
volume=""

cleanup() {
  if [ -n "$container" ]; then timeout 60 podman rm -f -t 0 "$container" >/dev/null 2>&1 || true; fi
  if [ -n "$volume" ]; then timeout 60 podman volume rm -f "$volume" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}

# Fails with the container's last log lines.
fail_run() {
  echo "--- the container's output (last 80 lines) ---" >&2
  timeout 30 podman logs --tail 80 "$container" >&2 2>&1 || true
  echo "---" >&2
  fail "$*"
}

free_port() {
  node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

run_image() {
  local port admin_key base ready="" user_id top chromium_dom health t0 t1 exit_code stopped_ms
  admin_key=$(node -e 'console.log(require("node:crypto").randomBytes(24).toString("hex"))')
  port=$(free_port)
  base="http://127.0.0.1:$port"
  container="wamt-ci-$$"
  volume="wamt-ci-data-$$"
  timeout 60 podman volume create "$volume" >/dev/null
  # As a user would run it: published port, a named volume for /data (PGlite there), the admin key in the env.
  if ! timeout 120 podman run -d --name "$container" -p "127.0.0.1:$port:3000" -v "$volume:/data" \
    -e WA_ENGINE=sandbox -e ADMIN_API_KEY="$admin_key" "$IMAGE" >"$work/run.log" 2>&1; then
    cat "$work/run.log" >&2
    fail "podman run failed"
  fi
  step "podman run: $container on 127.0.0.1:$port, volume $volume at /data, sandbox engine"

  # The first boot on PGlite runs initdb in WebAssembly: give it up to 120 s.
  for _ in $(seq 1 240); do
    if [ "$(podman inspect --format '{{.State.Running}}' "$container" 2>/dev/null)" != true ]; then
      fail_run "the container stopped before /health/ready answered 200"
    fi
    if curl -fsS -m 5 -o "$work/ready.json" "$base/health/ready" 2>/dev/null; then
      ready=yes
      break
    fi
    sleep 0.5
  done
  [ -n "$ready" ] || fail_run "/health/ready did not answer 200 within 120 s"
  # Chromium is in the image: the whatsapp-web engine is available (where /health/ready lists the engines).
  node -e '
    const ready = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    const web = ready.checks?.engines?.["whatsapp-web"];
    if (web && !web.available) { console.error(`whatsapp-web unavailable: ${web.reason}`); process.exit(1); }
  ' "$work/ready.json" || fail_run "/health/ready: the whatsapp-web engine is unavailable in the image"
  step "GET /health/ready: 200"

  # The HTTP checks of scripts/smoke.ts against the container: a session, its QR code scanned, one message sent.
  if ! SMOKE_URL="$base" SMOKE_ADMIN_KEY="$admin_key" timeout 300 node --import tsx scripts/smoke.ts; then
    fail_run "the smoke checks failed against the container"
  fi
  last=$(date +%s)

  # Not root: the image's user, and the service's own process.
  user_id=$(timeout 30 podman exec "$container" id -u)
  [ "$user_id" != 0 ] || fail_run "podman exec runs as root in the image"
  top=$(timeout 30 podman top "$container" user pid args)
  echo "$top" | sed 's/^/container:   /'
  echo "$top" | awk 'NR > 1 && /node dist\/main.js/ { found = 1; if ($1 == "root" || $1 == "0") bad = 1 } END { exit !(found && !bad) }' ||
    fail_run "node dist/main.js is not running, or runs as root"
  echo "$top" | awk 'NR > 1 && $2 == 1 && /tini/ { found = 1 } END { exit !found }' || fail_run "PID 1 is not tini"
  step "the service runs as uid $user_id (not root), under tini"

  # Chromium starts in the image, as that user, with the flags the whatsapp-web engine gives it.
  chromium_dom=$(timeout 120 podman exec "$container" timeout 90 chromium --headless --no-sandbox --disable-gpu \
    --disable-dev-shm-usage --no-first-run --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir=/tmp/chromium-check --dump-dom 'data:text/html,<p>wamt-chromium-ok</p>' 2>"$work/chromium.log" || true)
  if ! grep -q wamt-chromium-ok <<<"$chromium_dom"; then
    tail -20 "$work/chromium.log" >&2
    fail_run "Chromium did not render a page in the image"
  fi
  step "Chromium renders a page in the image ($(timeout 30 podman exec "$container" chromium --version 2>/dev/null | head -1))"

  # The image's HEALTHCHECK (podman runs it on demand here: no systemd timers on this machine).
  health=$(timeout 60 podman healthcheck run "$container" 2>&1) || fail_run "HEALTHCHECK failed: $health"
  step "HEALTHCHECK: healthy"

  # What the service keeps is in the volume.
  timeout 30 podman exec "$container" test -d /data/pg || fail_run "no embedded database in the /data volume"

  # podman stop: SIGTERM to tini, forwarded to node, which drains and exits 0; SIGKILL would come after 10 s.
  t0=$(date +%s%N)
  timeout 60 podman stop -t "$STOP_LIMIT_S" "$container" >/dev/null 2>&1 || true
  t1=$(date +%s%N)
  stopped_ms=$(((t1 - t0) / 1000000))
  exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$container")
  [ "$exit_code" = 0 ] || fail_run "after podman stop the container exited with code $exit_code (${stopped_ms} ms), expected 0"
  [ "$stopped_ms" -lt $((STOP_LIMIT_S * 1000)) ] || fail_run "podman stop took ${stopped_ms} ms"
  timeout 30 podman logs "$container" 2>&1 | grep -q '"service.stopped"' ||
    fail_run "the service did not log service.stopped"
  step "podman stop: exit code 0 after ${stopped_ms} ms"
}

main() {
  work=$(mktemp -d)
  trap cleanup EXIT
  trap 'exit 143' TERM INT
  install_tools
  configure_podman
  ensure_base
  build_image
  run_image
  echo "container: ok ($(($(date +%s) - started)) s)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
