#!/usr/bin/env bash
# The Debian package: builds it with cpack from the build dir into a temp dir, checks its files,
# conffile, dependencies and maintainer scripts, runs the packaged binary's --check on the
# packaged config, and `systemd-analyze verify` on the unit. Then, as root with dpkg: installs it,
# checks the shardgate user and the config's owner, runs the packaged proxy as that user on free
# loopback ports, (under systemd) starts, reloads and stops the unit, and purges the package,
# removing the user it created, so that the machine is left as it was.
#
#   package_test.sh --build-dir DIR   # a configured tree with shardgate and shardctl built
#
# Exit 77 (skipped): the binaries are not built in DIR, or, after every check that needs no
# root passed, not root / no dpkg / shardgate already installed on this machine.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=""
while (($#)); do
  case $1 in
    --build-dir) BUILD=$(realpath -m "$2"); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -n $BUILD ]] || { echo "usage: package_test.sh --build-dir DIR" >&2; exit 2; }
for bin in proxy/shardgate tools/shardctl/shardctl; do
  if [[ ! -x $BUILD/$bin ]]; then
    echo "SKIP: $BUILD/$bin is not built" >&2
    exit 77
  fi
done
for tool in cpack dpkg-deb dpkg-shlibdeps systemd-analyze; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sg-package.XXXXXX")
chmod 755 "$WORK"  # the shardgate user reaches its config copy below
HAD_MANIFEST=0
[[ -e $BUILD/install_manifest.txt ]] && HAD_MANIFEST=1
PROXY_PID=""
INSTALLED=0     # this test installed the package: purge it
USER_EXISTED=1  # the shardgate user/group existed before: keep them
GROUP_EXISTED=1

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "-- $*"; }

stop_proxy() {  # stop_proxy: SIGTERM, bounded wait, then SIGKILL; returns the exit status
  local rc=0 i
  [[ -n $PROXY_PID ]] || return 0
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || rc=$?
  PROXY_PID=""
  return "$rc"
}
cleanup() {
  stop_proxy || true
  if ((INSTALLED)); then
    if [[ -d /run/systemd/system ]]; then systemctl stop shardgate.service 2>/dev/null || true; fi
    timeout 120 dpkg --purge shardgate >/dev/null 2>&1 || echo "cleanup: dpkg --purge failed" >&2
  fi
  if ((!USER_EXISTED)) && getent passwd shardgate >/dev/null; then
    userdel shardgate 2>/dev/null || echo "cleanup: userdel shardgate failed" >&2
  fi
  if ((!GROUP_EXISTED)) && getent group shardgate >/dev/null; then
    groupdel shardgate 2>/dev/null || echo "cleanup: groupdel shardgate failed" >&2
  fi
  # cpack runs the project's install script, which writes the manifest into the build dir.
  ((HAD_MANIFEST)) || rm -f "$BUILD/install_manifest.txt"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {  # a loopback port nobody listens on
  local p=$((20000 + ($$ * 13 + RANDOM) % 10000)) i
  for ((i = 0; i < 1000; i++)); do
    if ! ss -Htan "( sport = :$p )" 2>/dev/null | grep -q . &&
      ! grep -qx "$p" "$WORK/ports" 2>/dev/null; then
      echo "$p" >>"$WORK/ports"
      echo "$p"
      return
    fi
    p=$((p + 1))
  done
  fail "no free port"
}

# with_ports IN OUT: the config with listen and admin http on free ports and every server on
# 127.0.0.1 at a closed port (connection refused at once: no DNS, no connect timeout).
with_ports() {
  local listen=$1 http=$2 dead=$3
  sed -E -e "s/\{host: [^,}]+, port: [0-9]+/{host: 127.0.0.1, port: $dead/g" \
    -e "s/^listen: \{host: 127\.0\.0\.1, port: [0-9]+/listen: {host: 127.0.0.1, port: $listen/" \
    -e "s/^(  http: \{host: 127\.0\.0\.1, port: )[0-9]+/\1$http/" \
    -e "s/^(  proxies: \[\{host: 127\.0\.0\.1, port: )[0-9]+/\1$listen/"
}

# verify_unit FILE: systemd-analyze verify with nothing on stderr (it exits 0 on unknown keys).
verify_unit() {
  local out
  out=$(timeout 60 systemd-analyze verify "$1" 2>&1) || fail "systemd-analyze verify $1: $out"
  [[ -z $out ]] || fail "systemd-analyze verify $1 is not clean: $out"
}

# --- the package, as cpack builds it ------------------------------------------------------------
step "cpack -G DEB"
if ! timeout 300 cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK/pkg" \
    >"$WORK/cpack.log" 2>&1; then
  cat "$WORK/cpack.log" >&2
  fail "cpack"
fi
DEB=$(find "$WORK/pkg" -maxdepth 1 -name 'shardgate_*.deb' | head -n 1)
[[ -f $DEB ]] || { cat "$WORK/cpack.log" >&2; fail "no shardgate_*.deb in $WORK/pkg"; }
VERSION=$(sed -n 's/^project(shardgate VERSION \([0-9.]*\).*/\1/p' "$ROOT/CMakeLists.txt")
[[ $(basename "$DEB") == "shardgate_${VERSION}_$(dpkg --print-architecture).deb" ]] ||
  fail "unexpected file name $(basename "$DEB") (version $VERSION)"

step "control fields"
field() { dpkg-deb -f "$DEB" "$1"; }
[[ $(field Package) == shardgate ]] || fail "Package: $(field Package)"
[[ $(field Version) == "$VERSION" ]] || fail "Version: $(field Version), project $VERSION"
[[ $(field Section) == net ]] || fail "Section: $(field Section)"
[[ -n $(field Maintainer) ]] || fail "no Maintainer"
[[ -n $(field Description) ]] || fail "no Description"
DEPENDS=$(field Depends)
# adduser for postinst; the rest come from dpkg-shlibdeps.
for dep in adduser libc6 libstdc++6 libpq5 libssl3 libsystemd0 libyaml-cpp; do
  [[ $DEPENDS == *"$dep"* ]] || fail "Depends lacks $dep: $DEPENDS"
done

step "files"
dpkg-deb -c "$DEB" >"$WORK/contents"
has() {  # has MODE PATH
  grep -qE "^$1 root/root +[0-9]+ [0-9-]+ [0-9:]+ \./$2\$" "$WORK/contents" ||
    { cat "$WORK/contents" >&2; fail "the package lacks $1 $2"; }
}
has -rwxr-xr-x usr/bin/shardgate
has -rwxr-xr-x usr/bin/shardctl
has -rw-r--r-- usr/lib/systemd/system/shardgate.service
has -rw-r----- etc/shardgate/shardgate.yaml
has -rw-r--r-- usr/share/doc/shardgate/README.md
has -rw-r--r-- usr/share/doc/shardgate/ARCHITECTURE.md
dpkg-deb -x "$DEB" "$WORK/root"
cmp -s "$WORK/root/usr/lib/systemd/system/shardgate.service" "$ROOT/systemd/shardgate.service" ||
  fail "the packaged unit differs from systemd/shardgate.service"
cmp -s "$WORK/root/etc/shardgate/shardgate.yaml" "$ROOT/conf/examples/shardgate.yaml" ||
  fail "the packaged config differs from conf/examples/shardgate.yaml"

step "conffiles and maintainer scripts"
dpkg-deb -e "$DEB" "$WORK/control"
[[ $(cat "$WORK/control/conffiles") == /etc/shardgate/shardgate.yaml ]] ||
  fail "conffiles: $(cat "$WORK/control/conffiles")"
for script in postinst prerm postrm; do
  [[ -x $WORK/control/$script ]] || fail "no executable $script"
  cmp -s "$WORK/control/$script" "$ROOT/tools/package/$script" || fail "$script differs"
  sh -n "$WORK/control/$script" || fail "$script: syntax"
done
grep -q 'adduser --system' "$WORK/control/postinst" || fail "postinst creates no system user"

step "the packaged binaries run and accept the packaged config"
"$WORK/root/usr/bin/shardgate" --config "$WORK/root/etc/shardgate/shardgate.yaml" --check \
  >"$WORK/check.out" 2>&1 || { cat "$WORK/check.out" >&2; fail "packaged --check"; }
"$WORK/root/usr/bin/shardctl" --config "$WORK/root/etc/shardgate/shardgate.yaml" check \
  >"$WORK/check.out" 2>&1 || { cat "$WORK/check.out" >&2; fail "packaged shardctl check"; }

step "systemd-analyze verify (paths rewritten to the built binary)"
mkdir -p "$WORK/unit"
sed "s#/usr/bin/shardgate#$BUILD/proxy/shardgate#g" "$ROOT/systemd/shardgate.service" \
  >"$WORK/unit/shardgate.service"
grep -q "^ExecStart=$BUILD/proxy/shardgate " "$WORK/unit/shardgate.service" ||
  fail "ExecStart is not /usr/bin/shardgate"
verify_unit "$WORK/unit/shardgate.service"

# --- installed on this machine ------------------------------------------------------------------
if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: not root: the package was checked but not installed" >&2
  exit 77
fi
if ! command -v dpkg >/dev/null || [[ ! -w /var/lib/dpkg ]]; then
  echo "SKIP: dpkg is not usable here: the package was checked but not installed" >&2
  exit 77
fi
# One installing test at a time on this machine (the package and the user are global).
exec 9>/run/lock/shardgate-package-test.lock
flock -w 300 9 || fail "another package test holds /run/lock/shardgate-package-test.lock"
if dpkg-query -W -f='${Status}' shardgate 2>/dev/null | grep -q 'installed\|config-files'; then
  echo "SKIP: a shardgate package is already on this machine; not touching it" >&2
  exit 77
fi
getent passwd shardgate >/dev/null || USER_EXISTED=0
getent group shardgate >/dev/null || GROUP_EXISTED=0

step "dpkg -i"
INSTALLED=1
timeout 120 dpkg -i "$DEB" >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log" >&2; fail "dpkg -i"; }
getent passwd shardgate >/dev/null || fail "postinst did not create the user shardgate"
getent group shardgate >/dev/null || fail "postinst did not create the group shardgate"
[[ $(getent passwd shardgate | cut -d: -f6) == /var/lib/shardgate ]] || fail "home of shardgate"
[[ $(stat -c '%U:%G %a' /etc/shardgate/shardgate.yaml) == "root:shardgate 640" ]] ||
  fail "/etc/shardgate/shardgate.yaml is $(stat -c '%U:%G %a' /etc/shardgate/shardgate.yaml)"
[[ $(stat -c '%U:%G' /var/lib/shardgate) == shardgate:shardgate ]] || fail "/var/lib/shardgate"
dpkg-query -W -f='${Conffiles}\n' shardgate | grep -q '/etc/shardgate/shardgate.yaml' ||
  fail "dpkg does not list the conffile"

step "reinstall (the upgrade path of the maintainer scripts)"
timeout 120 dpkg -i "$DEB" >"$WORK/dpkg.log" 2>&1 ||
  { cat "$WORK/dpkg.log" >&2; fail "dpkg -i again"; }
[[ $(stat -c '%U:%G %a' /etc/shardgate/shardgate.yaml) == "root:shardgate 640" ]] ||
  fail "the config after a reinstall is $(stat -c '%U:%G %a' /etc/shardgate/shardgate.yaml)"

step "the installed binary checks the installed config (as root and as shardgate)"
/usr/bin/shardgate --config /etc/shardgate/shardgate.yaml --check >"$WORK/check.out" 2>&1 ||
  { cat "$WORK/check.out" >&2; fail "/usr/bin/shardgate --check"; }
setpriv --reuid=shardgate --regid=shardgate --init-groups -- \
  /usr/bin/shardgate --config /etc/shardgate/shardgate.yaml --check >"$WORK/check.out" 2>&1 ||
  { cat "$WORK/check.out" >&2; fail "--check as the shardgate user (config permissions)"; }
verify_unit /usr/lib/systemd/system/shardgate.service

step "the installed proxy serves as the shardgate user"
LISTEN=$(free_port) HTTP=$(free_port) DEAD=$(free_port)
install -d -o shardgate -g shardgate -m 0750 "$WORK/run"
with_ports "$LISTEN" "$HTTP" "$DEAD" </etc/shardgate/shardgate.yaml >"$WORK/run/shardgate.yaml"
chown shardgate:shardgate "$WORK/run/shardgate.yaml"
# As under the unit: $STATE_DIRECTORY holds the two-phase commit decision log.
STATE_DIRECTORY=/var/lib/shardgate setpriv --reuid=shardgate --regid=shardgate --init-groups -- \
  /usr/bin/shardgate --config "$WORK/run/shardgate.yaml" --log-format json \
  >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
up=0
for ((i = 0; i < 150; i++)); do
  kill -0 "$PROXY_PID" 2>/dev/null || break
  if (: </dev/tcp/127.0.0.1/"$LISTEN") 2>/dev/null; then up=1; break; fi
  sleep 0.1
done
((up)) || { tail -n 30 "$WORK/proxy.log" >&2; fail "the packaged shardgate is not on $LISTEN"; }
[[ $(ps -o user= -p "$PROXY_PID" | tr -d ' ') == shardgate ]] ||
  fail "the proxy does not run as shardgate"
[[ -f /var/lib/shardgate/shardgate-2pc.log ]] || fail "no decision log in /var/lib/shardgate"
grep -q '"msg": "shardgate listening on' "$WORK/proxy.log" ||
  fail "no JSON log line: $(head -n 3 "$WORK/proxy.log")"
rc=0
stop_proxy || rc=$?
((rc == 0)) || { tail -n 30 "$WORK/proxy.log" >&2; fail "shardgate exited $rc on SIGTERM"; }
grep -q 'shardgate stopped' "$WORK/proxy.log" || fail "no 'shardgate stopped' in the log"

if [[ -d /run/systemd/system ]]; then
  step "systemctl start/reload/stop (the installed config on free ports)"
  # /tmp is private to the unit: the test's ports go into the installed conffile itself, which
  # the purge below removes.
  with_ports "$LISTEN" "$HTTP" "$DEAD" </etc/shardgate/shardgate.yaml >"$WORK/edited.yaml"
  cat "$WORK/edited.yaml" >/etc/shardgate/shardgate.yaml
  timeout 60 systemctl start shardgate.service ||
    { journalctl -u shardgate --no-pager -n 40 >&2 || true; fail "systemctl start shardgate"; }
  systemctl is-active --quiet shardgate.service || fail "shardgate.service is not active"
  (: </dev/tcp/127.0.0.1/"$LISTEN") 2>/dev/null || fail "the unit does not listen on $LISTEN"
  timeout 60 systemctl reload shardgate.service || fail "systemctl reload shardgate"
  systemctl is-active --quiet shardgate.service || fail "shardgate.service not active after reload"
  timeout 90 systemctl stop shardgate.service || fail "systemctl stop shardgate"
  ! systemctl is-active --quiet shardgate.service || fail "shardgate.service still active"
else
  echo "-- systemd is not PID 1 here: the unit was verified, not started"
fi

step "dpkg --purge"
timeout 120 dpkg --purge shardgate >"$WORK/dpkg.log" 2>&1 ||
  { cat "$WORK/dpkg.log" >&2; fail "dpkg --purge"; }
INSTALLED=0
! dpkg-query -W -f='${Status}' shardgate 2>/dev/null | grep -q 'installed\|config-files' ||
  fail "shardgate is still known to dpkg after the purge"
for gone in /usr/bin/shardgate /usr/bin/shardctl /usr/lib/systemd/system/shardgate.service \
    /etc/shardgate /var/lib/shardgate; do
  [[ ! -e $gone ]] || fail "$gone is left after the purge"
done
echo "package test passed: $(basename "$DEB")"
