#!/usr/bin/env bash
# Install (Debian packages) and start, on loopback, the services the tests use
# that pytest does not start itself. Idempotent: running services are left alone.
# Kafka (Tansu) and the ClickHouse HTTP fixture are started by the tests.
set -euo pipefail

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# MariaDB on 127.0.0.1:3306, root with an empty password.
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    echo "services: installing mariadb-server"
    apt_install mariadb-server
fi
if ! mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -uroot ping >/dev/null 2>&1; then
    echo "services: starting MariaDB"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- \
        --user=mysql --bind-address=127.0.0.1 --port=3306
    for _ in $(seq 1 60); do
        mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -uroot ping >/dev/null 2>&1 && break
        sleep 1
    done
fi
mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -uroot ping >/dev/null

# Chromium renders the HTML reports in the report tests (CJK fonts so Chinese
# labels show in its screenshots); openssl makes the test CA for TLS tests;
# unshare/nsenter (util-linux) and ip (iproute2) isolate the metrics test.
if ! command -v chromium >/dev/null 2>&1; then
    echo "services: installing chromium"
    apt_install chromium
fi
if [ ! -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ]; then
    echo "services: installing fonts-noto-cjk"
    apt_install fonts-noto-cjk
fi
for tool in openssl:openssl unshare:util-linux nsenter:util-linux ip:iproute2; do
    if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
        echo "services: installing ${tool#*:}"
        apt_install "${tool#*:}"
    fi
done
echo "services: MariaDB up on 127.0.0.1:3306; chromium at $(command -v chromium)"
