#!/bin/sh
# Regenerate the stored broadcast messages from their text files.
# Needs espeak-ng and sox (Debian packages espeak-ng and sox).
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# name voice words-per-minute
while read -r name voice speed; do
    espeak-ng -v "$voice" -s "$speed" -f "$name.txt" -w "$tmp/$name.wav"
    # 8 kHz mono 16-bit PCM; long pauses shortened so that each file stays small.
    sox "$tmp/$name.wav" -r 8000 -c 1 -b 16 -e signed-integer "$name.wav" \
        silence -l 1 0.05 0.5% -1 0.25 0.5%
done <<LIST
evacuation_zh cmn 260
evacuation_en en 160
test_zh cmn 180
test_en en 160
LIST
