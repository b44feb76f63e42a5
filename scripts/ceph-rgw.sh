#!/usr/bin/env bash
# ceph-rgw.sh — a throwaway single-node Ceph cluster with a RADOS Gateway (a real S3 server)
# for sbm's S3 backup tests and CI. Everything lives under one folder; nothing goes through systemd.
# The tests start one per test process through test/helpers/s3-gateway.ts and stop it at exit;
# its Debian packages come with the other test tools (scripts/install-test-tools.sh).
#
#   ceph-rgw.sh start DIR        build the cluster under DIR and wait until a signed S3 round
#                                trip works; stdout gets only AWS_REGION=us-east-1 then, as the
#                                last lines, S3_ENDPOINT=..., AWS_ACCESS_KEY_ID=...,
#                                AWS_SECRET_ACCESS_KEY=... (progress and errors go to stderr).
#                                A DIR that already holds a running cluster: prints its lines
#                                again; a dead one left by a killed run: replaced.
#   ceph-rgw.sh stop DIR         kill exactly the daemons whose pid files are in DIR, remove DIR
#   ceph-rgw.sh env DIR          print the same export lines again (also in DIR/env)
#   ceph-rgw.sh status DIR       exit 0 when every daemon runs and S3 answers
#   ceph-rgw.sh restart-rgw DIR  restart radosgw alone (data stays in the OSD)
#
#   set -a; eval "$(bash ceph-rgw.sh start /tmp/s3)"; set +a   # S3 vars are now exported
#   ...; bash ceph-rgw.sh stop /tmp/s3
#
# Layout: mon (ceph-mon) -> osd.0 (ceph-osd, objectstore memstore: object data lives in the OSD's
# RAM) -> radosgw (beast on 127.0.0.1:RGW_PORT). cephx is off (auth none); every address is
# 127.0.0.1; pools have size 1. Clients must use path-style URLs and region us-east-1 (another
# region makes CreateBucket fail with InvalidLocationConstraint). With @aws-sdk/client-s3 >= 3.729
# also set requestChecksumCalculation: 'WHEN_REQUIRED' (its default aws-chunked upload of a stream
# body gets HTTP 411 from this radosgw 16.2); CompleteMultipartUpload answers an empty ETag (HEAD
# the object for it).
#
# Environment (all optional):
#   RGW_PORT            S3 port (default 7480; CEPH_RGW_PORT is read too); must be free
#   CEPH_MON_PORT       monitor port (default: first free port from 3300 up; set it, and
#                       RGW_PORT, when starting several clusters at the same moment)
#   CEPH_MEMSTORE_BYTES OSD capacity in bytes (default 4 GiB). RAM is used only for data stored
#                       (the OSD's RSS stays near its peak after deletes), but past 95% the OSD
#                       is marked full and then every PUT *and* DELETE fails with HTTP 408 after
#                       30 s: size it above the most data a test run holds at once, counting
#                       deleted and overwritten data for ~40 s (radosgw's garbage collector frees
#                       it then)
#   CEPH_OSD_STORE      memstore (default) or bluestore: bluestore keeps object data in a sparse
#                       file DIR/osd/block of CEPH_BLUESTORE_BYTES (default 20 GiB) instead of
#                       RAM, for tests that hold more data than RAM allows
#   CEPH_START_TIMEOUT  seconds to wait for each daemon (default 120)
#   CEPH_WITH_MGR=1     also run a ceph-mgr (installs ceph-mgr): not needed for S3, only for
#                       `ceph df`/`ceph osd df`; costs ~300 MiB RSS and ~4 s more start
#   S3_ACCESS_KEY / S3_SECRET_KEY  fixed credentials instead of random ones
#   CEPH_RGW_NO_INSTALL=1  never apt-get missing packages, fail instead (the tests set it, so a
#                       machine without radosgw fails loudly rather than installing behind
#                       the test run's back)
set -euo pipefail

PROG=${0##*/}
# fd 9 = the caller's stderr, so that messages (and the log tails of a failed start) reach the
# caller even when a signal's trap runs while a command's stderr is sent to /dev/null
exec 9>&2
MARKER=.ceph-rgw-cluster          # stop only ever removes a DIR that holds this file
DAEMONS_STOP_ORDER=(rgw mgr osd mon)

log() { printf '%s: %s\n' "$PROG" "$*" >&9; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# --- packages ---------------------------------------------------------------------------------
ensure_packages() {
  local pkgs=(ceph-mon ceph-osd radosgw ceph-common curl) missing=()
  [[ ${CEPH_WITH_MGR:-0} == 1 ]] && pkgs+=(ceph-mgr)
  local bin
  for bin in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool curl; do
    command -v "$bin" >/dev/null || missing+=("$bin")
  done
  [[ ${CEPH_WITH_MGR:-0} == 1 ]] && ! command -v ceph-mgr >/dev/null && missing+=(ceph-mgr)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  [[ ${CEPH_RGW_NO_INSTALL:-0} == 1 ]] && die "missing ${missing[*]}: run scripts/install-test-tools.sh (as root)"
  [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]} and not root: apt-get install ${pkgs[*]}"
  log "installing ${pkgs[*]} (missing: ${missing[*]}); ~60 MB download, ~240 MB on disk"
  local out
  out=$(mktemp)
  if ! { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
      --no-install-recommends "${pkgs[@]}"; } >"$out" 2>&1 9>&-; then
    tail -n 40 "$out" >&9; rm -f "$out"; die "apt-get could not install ${pkgs[*]}"
  fi
  rm -f "$out"
}

# --- processes --------------------------------------------------------------------------------
# A pid counts as ours only while it runs (not a zombie) and its command line names DIR's
# ceph.conf; a recycled pid therefore never gets a signal from us.
pid_is_ours() {
  local pid=$1 state cmd
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z && $state != X ]] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *" -c $CONF "* ]]
}

daemon_pid() { cat "$DIR/run/$1.pid" 2>/dev/null || true; }
daemon_alive() { pid_is_ours "$(daemon_pid "$1")"; }

spawn() { # NAME BINARY ARGS... : the daemon runs in its own session with stdin, stdout and
  # stderr on /dev/null and DIR/log/NAME.out and no other inherited descriptor, so a caller
  # reading start's output through a pipe ($(...), | tee) sees it end when start ends
  local name=$1 pid i fd; shift
  (
    exec </dev/null >>"$DIR/log/$name.out" 2>&1
    for fd in /proc/"$BASHPID"/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-"; fi
    done
    exec setsid "$@" # not a group leader here, so setsid execs in place: same pid
  ) &
  pid=$!
  echo "$pid" >"$DIR/run/$name.pid"
  for ((i = 0; i < 100; i++)); do # until the subshell has become the daemon
    pid_is_ours "$pid" || [[ ! -e /proc/$pid ]] && return 0
    sleep 0.02
  done
}

kill_daemon() { # NAME: TERM, wait up to 10 s (a healthy daemon needs <1 s), then KILL
  local name=$1 pid i
  pid=$(daemon_pid "$name")
  pid_is_ours "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do pid_is_ours "$pid" || return 0; sleep 0.1; done
  log "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do pid_is_ours "$pid" || return 0; sleep 0.1; done
  log "WARNING: $name (pid $pid) is still running"
}

kill_all() { local d; for d in "${DAEMONS_STOP_ORDER[@]}"; do kill_daemon "$d"; done; }

dump_logs() {
  local f
  for f in "$DIR"/log/*; do
    [[ -s $f ]] || continue
    printf '\n===== tail of %s =====\n' "$f" >&9
    tail -n 25 "$f" >&9
  done
}

fail_start() { log "ERROR: $*"; dump_logs; exit 1; }

on_start_exit() { # any failed or interrupted start leaves no daemon behind
  local rc=$?
  ((rc == 0)) && return 0
  kill_all
  log "start failed (exit $rc); daemons stopped; logs kept in $DIR/log (clean up: $PROG stop $DIR)"
}

wait_for() { # DESCRIPTION DAEMON COMMAND... : poll COMMAND until it succeeds
  local what=$1 daemon=$2; shift 2
  local deadline=$((SECONDS + ${CEPH_START_TIMEOUT:-120}))
  until "$@" >/dev/null 2>&1; do
    daemon_alive "$daemon" || fail_start "$daemon exited while waiting for $what"
    ((SECONDS < deadline)) || fail_start "timed out after ${CEPH_START_TIMEOUT:-120}s waiting for $what"
    sleep 0.25
  done
}

new_uuid() { uuidgen 2>/dev/null || cat /proc/sys/kernel/random/uuid; }

# --- ports ------------------------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_mon_port() {
  local p
  if [[ -n ${CEPH_MON_PORT:-} ]]; then
    port_in_use "$CEPH_MON_PORT" && die "CEPH_MON_PORT $CEPH_MON_PORT is already in use"
    echo "$CEPH_MON_PORT"; return
  fi
  for ((p = 3300; p < 3400; p++)); do port_in_use "$p" || { echo "$p"; return; }; done
  die "no free monitor port in 3300-3399 (set CEPH_MON_PORT)"
}

# --- cluster ----------------------------------------------------------------------------------
ceph_cli() { timeout 30 ceph -c "$CONF" --connect-timeout 10 "$@"; }

write_conf() { # FSID MON_PORT RGW_PORT
  cat >"$CONF" <<EOF
[global]
fsid = $1
mon host = v2:127.0.0.1:$2
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
keyring = $DIR/keyring
run dir = $DIR/run
crash dir = $DIR/crash
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.\$channel.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
# a nearly full disk must not shut the monitor down in CI
mon data avail warn = 1
mon data avail crit = 0

[mon]
mon data = $DIR/mon
# commit map changes every 0.1 s instead of 1 s: radosgw's pool creation at start is ~8x faster
paxos propose interval = 0.1
admin socket = $DIR/run/\$name.asok

[osd]
osd data = $DIR/osd
admin socket = $DIR/run/\$name.asok
$(osd_store_conf)

[mgr]
mgr data = $DIR/mgr
admin socket = $DIR/run/\$name.asok

[client.rgw.0]
admin socket = $DIR/run/\$name.asok
rgw data = $DIR/rgw
rgw frontends = beast endpoint=127.0.0.1:$3
# radosgw defaults to a "secure" mon connection, which auth none cannot give
ms mon client mode = crc secure
# deleted objects' tails are freed after 30 s instead of 2 h (memstore holds them in RAM)
rgw gc obj min wait = 30
rgw gc processor period = 10
# a request the OSD cannot serve (e.g. it is full) fails after 30 s instead of hanging forever
rados osd op timeout = 30
EOF
}

osd_store_conf() {
  if [[ $OSD_STORE == memstore ]]; then
    printf 'osd objectstore = memstore\nmemstore device bytes = %s\n' "${CEPH_MEMSTORE_BYTES:-4294967296}"
  else
    cat <<EOF
osd objectstore = bluestore
bluestore block create = true
bluestore block size = ${CEPH_BLUESTORE_BYTES:-21474836480}
bluestore fsck on mkfs = false
bdev enable discard = false
osd memory target = 1073741824
EOF
  fi
}

s3_answers() { # anonymous GET / returns ListAllMyBucketsResult once radosgw serves requests
  curl -sS -m 3 "http://127.0.0.1:$RGW_PORT/" 2>/dev/null | grep -q ListAllMyBucketsResult
}

s3_signed() { # METHOD PATH : a SigV4-signed request with the test user's keys, 2xx expected
  curl -sSf -m 10 -X "$1" --aws-sigv4 "aws:amz:us-east-1:s3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    --user "$ACCESS_KEY:$SECRET_KEY" ${3:+--data-binary "$3"} "http://127.0.0.1:$RGW_PORT$2" >/dev/null
}

start_rgw() {
  spawn rgw radosgw -f -c "$CONF" -n client.rgw.0
  wait_for "radosgw to answer on 127.0.0.1:$RGW_PORT" rgw s3_answers
}

print_env() { cat "$DIR/env"; }

cmd_start() {
  local t0=$SECONDS
  if [[ -f $DIR/$MARKER ]]; then
    if cmd_status 2>/dev/null; then log "already running in $DIR"; print_env; return 0; fi
    log "stale cluster in $DIR: removing it"; cmd_stop
  elif [[ -e $DIR && -n $(ls -A "$DIR" 2>/dev/null) ]]; then
    die "$DIR exists and is not empty; refusing to use it"
  fi
  local v
  for v in RGW_PORT CEPH_RGW_PORT CEPH_MON_PORT CEPH_MEMSTORE_BYTES CEPH_BLUESTORE_BYTES CEPH_START_TIMEOUT; do
    [[ ${!v:-0} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
  done
  OSD_STORE=${CEPH_OSD_STORE:-memstore}
  [[ $OSD_STORE == memstore || $OSD_STORE == bluestore ]] ||
    die "CEPH_OSD_STORE must be memstore or bluestore, not '$OSD_STORE'"
  ensure_packages
  RGW_PORT=${RGW_PORT:-${CEPH_RGW_PORT:-7480}}
  port_in_use "$RGW_PORT" && die "port $RGW_PORT is already in use (set RGW_PORT)"
  local mon_port fsid osd_uuid
  mon_port=$(pick_mon_port)
  fsid=$(new_uuid)
  osd_uuid=$(new_uuid)
  ACCESS_KEY=${S3_ACCESS_KEY:-$(head -c 32 /dev/urandom | sha256sum | cut -c1-20 | tr a-f A-F)}
  SECRET_KEY=${S3_SECRET_KEY:-$(head -c 32 /dev/urandom | sha256sum | cut -c1-40)}

  trap on_start_exit EXIT
  trap 'exit 130' INT TERM HUP
  mkdir -p "$DIR"/{mon,osd,mgr,rgw,log,run,crash}
  : >"$DIR/$MARKER"
  write_conf "$fsid" "$mon_port" "$RGW_PORT"
  printf 'AWS_REGION=us-east-1\nS3_ENDPOINT=http://127.0.0.1:%s\nAWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' \
    "$RGW_PORT" "$ACCESS_KEY" "$SECRET_KEY" >"$DIR/env"

  log "monitor on 127.0.0.1:$mon_port"
  ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" \
    >>"$DIR/log/mon.out" 2>&1 || fail_start "ceph-mon --mkfs failed"
  spawn mon ceph-mon -f -c "$CONF" -i a
  wait_for "the monitor to form a quorum" mon ceph_cli mon stat

  log "osd.0 ($OSD_STORE)"
  ceph_cli osd new "$osd_uuid" 0 >/dev/null 2>>"$DIR/log/osd.out" || fail_start "ceph osd new failed"
  ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$DIR/log/osd.out" 2>&1 \
    || fail_start "ceph-osd --mkfs failed"
  spawn osd ceph-osd -f -c "$CONF" -i 0
  wait_for "osd.0 to be up" osd osd_up

  if [[ ${CEPH_WITH_MGR:-0} == 1 ]]; then
    log "mgr"
    spawn mgr ceph-mgr -f -c "$CONF" -i x
    wait_for "the mgr to be active" mgr mgr_active
  fi

  log "radosgw on 127.0.0.1:$RGW_PORT"
  start_rgw
  radosgw-admin -c "$CONF" user create --uid=test --display-name="test user" \
    --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null 2>>"$DIR/log/rgw.out" \
    || fail_start "radosgw-admin user create failed"
  # An authenticated round trip proves the keys work and creates the bucket index and data
  # pools now, so a test's first PUT does not pay the ~2 s pool creation.
  local b="warmup-$$"
  { s3_signed PUT "/$b" && s3_signed PUT "/$b/o" x && s3_signed DELETE "/$b/o" && s3_signed DELETE "/$b"; } \
    2>>"$DIR/log/rgw.out" || fail_start "signed S3 round trip failed"
  trap - EXIT INT TERM HUP
  log "ready in $((SECONDS - t0)) s (stop with: $PROG stop $DIR)"
  print_env
}

osd_up() { ceph_cli osd stat -f json | grep -q '"num_up_osds":1'; }
mgr_active() { ceph_cli mgr stat -f json | grep -q '"available":true'; }

cmd_stop() {
  [[ -e $DIR ]] || return 0
  [[ -f $DIR/$MARKER ]] || die "$DIR was not made by $PROG (no $MARKER); not touching it"
  kill_all
  local d
  for d in "${DAEMONS_STOP_ORDER[@]}"; do
    daemon_alive "$d" && die "$d (pid $(daemon_pid "$d")) survived; $DIR kept"
  done
  rm -rf -- "$DIR"
  log "stopped; removed $DIR"
}

cmd_status() {
  [[ -f $DIR/$MARKER && -f $DIR/env ]] || { log "no cluster in $DIR"; return 1; }
  RGW_PORT=$(sed -n 's|^S3_ENDPOINT=http://127.0.0.1:||p' "$DIR/env")
  local d
  for d in mon osd rgw; do daemon_alive "$d" || { log "$d is not running"; return 1; }; done
  s3_answers || { log "radosgw does not answer on $RGW_PORT"; return 1; }
}

cmd_restart_rgw() {
  [[ -f $DIR/$MARKER ]] || die "no cluster in $DIR"
  RGW_PORT=$(sed -n 's|^S3_ENDPOINT=http://127.0.0.1:||p' "$DIR/env")
  kill_daemon rgw
  local i
  for ((i = 0; i < 100; i++)); do port_in_use "$RGW_PORT" || break; sleep 0.1; done
  start_rgw
  log "radosgw restarted (pid $(daemon_pid rgw))"
}

[[ $# -eq 2 ]] || usage
[[ $2 == /* ]] && DIR=$2 || DIR=$PWD/$2
DIR=${DIR%/}
[[ -n $DIR && $DIR != / ]] || die "refusing DIR=/"
CONF=$DIR/ceph.conf
case $1 in
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) [[ -f $DIR/env ]] || die "no cluster in $DIR"; print_env ;;
  status) cmd_status ;;
  restart-rgw) cmd_restart_rgw ;;
  *) usage ;;
esac
