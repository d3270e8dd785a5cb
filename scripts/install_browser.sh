#!/usr/bin/env bash
# The headless browser the web-app tests drive: Debian's chromium and chromium-driver
# (the browser cannot be downloaded by selenium here). Installed with apt-get when run as root
# and missing; otherwise print the command and carry on (the browser tests then skip).
# The Python side (flask, selenium) comes from py3_requirements.txt.
set -u
PKGS="chromium chromium-driver"
missing=""
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || [ -x /usr/bin/chromedriver ] || missing="$missing chromium-driver"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null; }; } \
    || echo "warning: apt-get could not install$missing; the browser tests will be skipped" >&2
else
  echo "note: missing$missing; install with: sudo apt-get install -y $PKGS" >&2
  echo "note: until then the web-app browser tests are skipped" >&2
fi
exit 0
