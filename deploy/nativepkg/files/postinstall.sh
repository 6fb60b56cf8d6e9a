#!/bin/sh
# vaultpam-connector post-install (DEB: configure; RPM: 1 = install, 2 = upgrade).
# Creates the service user, enables the service and restarts it when it is
# configured. It never enrols: the token is typed with `vaultpam-connector enrol`.
set -e
case "$1" in
	configure|1|2) ;;
	*) exit 0 ;;
esac
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers vaultpam-connector.conf
elif ! getent passwd vaultpam >/dev/null; then
	useradd --system --user-group --home-dir /var/lib/vaultpam --shell /usr/sbin/nologin --comment "VaultPAM connector" vaultpam
fi
if command -v systemctl >/dev/null 2>&1; then
	systemctl enable vaultpam-connector.service >/dev/null 2>&1 || true
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload
		if grep -q '^control_plane_url:' /etc/vaultpam/connector.yaml 2>/dev/null; then
			systemctl restart vaultpam-connector.service || true
		fi
	fi
fi
if ! grep -q '^control_plane_url:' /etc/vaultpam/connector.yaml 2>/dev/null; then
	cat <<'MSG'
vaultpam-connector is installed but not configured. Next:
  1. edit /etc/vaultpam/connector.yaml (control_plane_url, connector_name)
  2. systemctl restart vaultpam-connector
  3. vaultpam-connector enrol    (type the token from Connectors -> Add Connector)
MSG
fi
exit 0
