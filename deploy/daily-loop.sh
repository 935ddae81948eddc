#!/bin/sh
# The compose scheduler: `alpha daily run` on weekdays (Monday to Friday) at ALPHA_DAILY_AT (HH:MM, default
# 07:30) in the time zone ALPHA_DAILY_TZ (an IANA name, default UTC), forever; SIGTERM stops it at once.
# A failed run is logged and the loop goes on to the next day (`alpha status` and /healthz show the scheduler as
# stale after 26 h). The daily run is idempotent per lead, sequence and step, so a run by hand
# (`docker compose run --rm scheduler alpha daily run`) never sends twice.
#   alpha-daily-loop          run forever
#   alpha-daily-loop --next   print when the next run is due and exit (a check of the settings)
set -eu

AT="${ALPHA_DAILY_AT:-07:30}"
ZONE="${ALPHA_DAILY_TZ:-UTC}"
FORMAT="${ALPHA_LOG_FORMAT:-text}"

say() {  # level message: one line in the ALPHA_LOG_FORMAT the rest of the stack writes (messages hold no quotes)
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    if [ "$FORMAT" = "json" ]; then
        printf '{"time":"%s","level":"%s","logger":"alpha.scheduler","message":"%s"}\n' "$now" "$1" "$2"
    else
        printf 'time=%s level=%s logger=alpha.scheduler message="%s"\n' "$now" "$1" "$2"
    fi
}

case "$AT" in
    [01][0-9]:[0-5][0-9] | 2[0-3]:[0-5][0-9]) ;;
    *) say ERROR "environment variable ALPHA_DAILY_AT=$AT: expected HH:MM (00:00 to 23:59), e.g. 07:30" >&2
       exit 2 ;;
esac
if [ "$ZONE" != "UTC" ] && [ ! -f "/usr/share/zoneinfo/$ZONE" ]; then
    say ERROR "environment variable ALPHA_DAILY_TZ=$ZONE: not a known time zone (an IANA name such as UTC or Europe/Berlin)" >&2
    exit 2
fi
export TZ="$ZONE"

next_run() {  # epoch seconds of the next weekday at $AT, after now (DST-safe: each candidate day is resolved alone)
    now=$(date +%s)
    i=0
    while [ "$i" -le 8 ]; do
        day=$(date -d "today + $i days" +%Y-%m-%d)
        at=$(date -d "$day $AT" +%s)
        if [ "$at" -gt "$now" ] && [ "$(date -d "$day" +%u)" -le 5 ]; then
            echo "$at"
            return 0
        fi
        i=$((i + 1))
    done
    return 1
}

if [ "${1:-}" = "--next" ]; then
    t=$(next_run)
    echo "next daily run: $(date -d "@$t" '+%Y-%m-%d %H:%M %Z') (in $((t - $(date +%s))) s)"
    exit 0
fi
if [ "$#" -gt 0 ]; then
    echo "usage: alpha-daily-loop [--next]" >&2
    exit 2
fi

trap 'say INFO "scheduler stopped"; exit 0' TERM INT
while :; do
    t=$(next_run)
    say INFO "next daily run at $(date -d "@$t" '+%Y-%m-%d %H:%M %Z')"
    sleep "$((t - $(date +%s)))" &
    wait $! || true
    if alpha daily run; then
        say INFO "daily run done"
    else
        say ERROR "daily run failed (exit $?): see the lines above; the next one is tomorrow"
    fi
done
