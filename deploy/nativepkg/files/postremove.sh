#!/bin/sh
# vaultpam-connector post-remove. DEB purge removes everything the package
# made: configuration, the identity in /var/lib/vaultpam and the user. A plain
# remove (and an RPM erase) keeps configuration, identity and user, so a
# reinstall comes back Online as the same connector.
set -e
case "$1" in
	purge)
		rm -rf /var/lib/vaultpam /etc/vaultpam
		if getent passwd vaultpam >/dev/null; then userdel vaultpam; fi
		if getent group vaultpam >/dev/null; then groupdel vaultpam; fi
		;;
esac
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
fi
exit 0
