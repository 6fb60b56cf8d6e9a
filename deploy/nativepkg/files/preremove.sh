#!/bin/sh
# vaultpam-connector pre-remove (DEB: remove; RPM: 0 = erase). Stops and
# disables the service; an upgrade keeps it running until post-install.
set -e
case "$1" in
	remove|0)
		if command -v systemctl >/dev/null 2>&1; then
			systemctl disable --now vaultpam-connector.service >/dev/null 2>&1 || true
		fi
		;;
esac
exit 0
