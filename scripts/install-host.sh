#!/usr/bin/env bash
# Installs device-agent on a host from this repository: the system user, the directories with
# their modes, the project in a virtualenv at /opt/device-agent/.venv and the systemd unit; then
# prints what to put in the configuration. Idempotent. Run as root (docs/operations.md).
#
#   ROLE=agent        (default) the daemon of a farm host: user device-agent, device-agent.service
#   ROLE=coordinator  the reference coordinator: user device-coordinator, device-coordinator.service
#   DESTDIR=/some/root  install under that root instead of / (packaging, tests): the user is then
#                     only recorded in DESTDIR/usr/lib/sysusers.d, nothing is chowned and systemd
#                     is not told
#   PYTHON=python3    the interpreter of the virtualenv (3.11 or newer)
#   PACKAGE=FILE.whl  install that wheel of the project (built once for many hosts) instead of
#                     building this checkout
#   VENV_ARGS, PIP, PIP_ARGS: extra arguments of `python -m venv`; the pip that installs into
#                     the virtualenv (default: its own); extra arguments of `pip install`
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
ROLE=${ROLE:-agent}
PYTHON=${PYTHON:-python3}
case $ROLE in
  agent) user=device-agent ;;
  coordinator) user=device-coordinator ;;
  *) echo "install-host: ROLE must be agent or coordinator, not '$ROLE'" >&2; exit 2 ;;
esac
unit=$user.service
venv=$DESTDIR/opt/device-agent/.venv
real=false
if [ -z "$DESTDIR" ]; then
  [ "$(id -u)" = 0 ] || { echo "install-host: run as root (or set DESTDIR)" >&2; exit 2; }
  real=true
fi

# The user, as a sysusers.d entry (systemd-sysusers(8) creates it, here and at every boot).
# Its home is its state directory: adb keeps its key in ~/.android. adb reaches USB phones
# through the plugdev group (Debian's udev rules for Android devices).
sysusers=$DESTDIR/usr/lib/sysusers.d/$user.conf
install -d -m 0755 "$(dirname "$sysusers")"
echo "u $user - \"$user service\" /var/lib/$user /usr/sbin/nologin" >"$sysusers"
if [ "$ROLE" = agent ]; then echo "m $user plugdev" >>"$sysusers"; fi
chmod 0644 "$sysusers"
$real && systemd-sysusers "$sysusers"

# Directories: configuration readable by the service's group only, state and logs its alone.
owner() { if $real; then chown "$@"; fi; }
install -d -m 0750 "$DESTDIR/etc/$user"
owner "root:$user" "$DESTDIR/etc/$user"
for dir in "/var/lib/$user" "/var/log/$user"; do
  install -d -m 0700 "$DESTDIR$dir"
  owner "$user:$user" "$DESTDIR$dir"
done

# The project, in its own virtualenv (a copy of this checkout, not an editable install).
install -d -m 0755 "$DESTDIR/opt/device-agent"
read -ra venv_args <<<"${VENV_ARGS:-}"
read -ra pip_args <<<"${PIP_ARGS:-}"
if [ -n "${PIP:-}" ]; then read -ra pip <<<"$PIP"; else pip=("$venv/bin/python" -m pip); fi
[ -x "$venv/bin/python" ] || "$PYTHON" -m venv "${venv_args[@]}" "$venv"
"${pip[@]}" install -q --disable-pip-version-check "${pip_args[@]}" "${PACKAGE:-$repo}"
install -m 0644 "$repo/README.md" "$DESTDIR/opt/device-agent/README.md"

# The unit.
install -d -m 0755 "$DESTDIR/etc/systemd/system"
install -m 0644 "$repo/systemd/$unit" "$DESTDIR/etc/systemd/system/$unit"
# (Only where systemd runs: a container being prepared has the unit loaded when it boots.)
if $real && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

echo "install-host: installed $unit, /opt/device-agent/.venv, /etc/$user, /var/lib/$user"
if [ "$ROLE" = agent ]; then
  cat <<EOT
Next, as root:
  1. on the coordinator: device-coordinator token create $(hostname) --data-dir /var/lib/device-coordinator
  2. write the token to /etc/device-agent/token, then
       chown device-agent: /etc/device-agent/token && chmod 600 /etc/device-agent/token
  3. write /etc/device-agent/config.toml (config.example.toml documents every key), at least:
       [agent]
       host_id = "$(hostname)"
       state_file = "/var/lib/device-agent/state.db"
       [coordinator]
       url = "wss://COORDINATOR:8765/ws/host"
       token_file = "/etc/device-agent/token"
       # ca_file = "/etc/device-agent/coordinator-ca.pem"
       [[devices.browser]]
       name = "browser-1"
  4. sudo -u device-agent /opt/device-agent/.venv/bin/device-agent doctor --config /etc/device-agent/config.toml
  5. systemctl enable --now device-agent
EOT
else
  cat <<EOT
Next, as root:
  1. put the TLS pair in /etc/device-coordinator/cert.pem and key.pem (readable by device-coordinator),
     or edit ExecStart in /etc/systemd/system/$unit; for PostgreSQL put
     DEVICE_COORDINATOR_DATABASE=postgresql://... in /etc/device-coordinator/environment (mode 0600)
  2. sudo -u device-coordinator /opt/device-agent/.venv/bin/device-coordinator doctor --data-dir /var/lib/device-coordinator
  3. systemctl enable --now device-coordinator
EOT
fi
