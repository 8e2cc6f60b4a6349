#!/usr/bin/env bash
# Makes Debian's mosquitto broker available for the oracle's MQTT tests, which start their own
# broker on loopback with a config of their own (tests/oracle/test_oracle_mqtt.py). Idempotent:
# installs the package only if the binary is missing; starts nothing itself.
set -euo pipefail
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    exit 0
fi
echo "ensure_mosquitto: mosquitto not installed, installing Debian's mosquitto" >&2
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends mosquitto >/dev/null
# The package's own service (if its init script started one) would hold port 1883; the tests
# use free ports of their own, so it is left as the package set it up.
[ -x /usr/sbin/mosquitto ] || { echo "ensure_mosquitto: /usr/sbin/mosquitto missing after install" >&2; exit 1; }
