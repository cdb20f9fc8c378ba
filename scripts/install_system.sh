#!/usr/bin/env bash
# Install the Debian packages the pipeline needs, or say exactly how to.
# Soundfonts: those of configs/default.toml (FluidR3_GM, MuseScore_General, TimGM6mb: also the tests').
# More packages as arguments: `make shipped-model` passes opl3-soundfont (100 MB), which
# configs/shipped.toml and configs/large.toml also render with.
set -euo pipefail
PACKAGES="fluidsynth libfluidsynth3 sox libsox-fmt-all fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont
python3-venv libsndfile1 $*"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing system packages:$missing; run: sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
  exit 1
fi
echo "installing system packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
