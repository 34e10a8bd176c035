#!/bin/sh
# Entry point of the Alertmanager container (compose and k8s): render the configuration and
# the message templates from the environment (render.awk), refuse to start when no
# receiver is configured (alerts that reach nobody are worse than a failing container),
# then run Alertmanager with any extra arguments.
set -eu
src="${ALERTMANAGER_TEMPLATE_DIR:-/etc/alertmanager/templates}"
out="${ALERTMANAGER_CONFIG_DIR:-/alertmanager/config}"
mkdir -p "$out"
export ALERTMANAGER_CONFIG_DIR="$out"  # the config names the rendered templates by it
if [ -z "${TELEGRAM_BOT_TOKEN:-}${SLACK_WEBHOOK_URL:-}${ALERT_EMAIL_TO:-}" ]; then
    echo "alertmanager: no receiver configured: set TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID," \
         "SLACK_WEBHOOK_URL, or ALERT_EMAIL_TO with SMTP_SMARTHOST and ALERT_EMAIL_FROM" >&2
    exit 2
fi
if [ -n "${TELEGRAM_BOT_TOKEN:-}" ] && ! printf '%s' "${TELEGRAM_CHAT_ID:-}" | grep -Eq '^-?[0-9]+$'; then
    echo "alertmanager: TELEGRAM_CHAT_ID must be the numeric chat id (e.g. -1001234567890)" >&2
    exit 2
fi
if [ -n "${ALERT_EMAIL_TO:-}" ] && [ -z "${SMTP_SMARTHOST:-}" ]; then
    echo "alertmanager: ALERT_EMAIL_TO is set but SMTP_SMARTHOST (host:port) is not" >&2
    exit 2
fi
awk -f "$src/render.awk" "$src/alertmanager.yml.tmpl" > "$out/alertmanager.yml"
awk -f "$src/render.awk" "$src/mm.tmpl" > "$out/mm.tmpl"
exec "${ALERTMANAGER_BIN:-/bin/alertmanager}" --config.file="$out/alertmanager.yml" "$@"
