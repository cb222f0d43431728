#!/usr/bin/env bash
# Install what the composer's sampled instruments need, when it is missing: FluidSynth's library
# and the two permissively licensed General MIDI sound banks Debian packages (MIT; see
# licenses/soundbanks.toml). Without root or apt-get, say so and carry on: the composer then
# plays its own synth voices and says so in one line.
set -u
need=()
ldconfig -p 2>/dev/null | grep -q "libfluidsynth.so.3" || need+=(libfluidsynth3)
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need+=(fluid-soundfont-gm)
[ -f /usr/share/sounds/sf3/MuseScore_General_Full.sf3 ] || need+=(musescore-general-soundfont)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-banks: cannot install ${need[*]} (needs root and apt-get); the composer will use its synth voices" >&2
  exit 0
fi
echo "ensure-banks: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
  || echo "ensure-banks: apt-get could not install ${need[*]}; the composer will use its synth voices" >&2
exit 0
