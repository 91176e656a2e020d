#!/usr/bin/env bash
# Installs the Debian font packages that the glyph data set is rendered from (training/glyphs.py picks
# the faces among them: at least 208 of the 284 characters, no small caps, math or script faces; the
# list of faces, packages and licenses is training/FONTS.md). 48 packages, about 110 MB.
set -euo pipefail
packages=(
  fonts-noto-core fonts-texgyre fonts-urw-base35 fonts-dejavu-core fonts-dejavu-extra fonts-liberation
  fonts-liberation2 fonts-croscore fonts-crosextra-carlito fonts-crosextra-caladea fonts-linuxlibertine
  fonts-freefont-ttf fonts-lato fonts-inter fonts-open-sans fonts-roboto-unhinted fonts-roboto-slab
  fonts-cantarell fonts-ebgaramond fonts-ebgaramond-extra fonts-sil-gentiumplus fonts-sil-gentium-basic
  fonts-sil-charis fonts-sil-doulos fonts-sil-andika fonts-adf-accanthis fonts-adf-baskervald fonts-adf-berenis
  fonts-adf-gillius fonts-adf-ikarius fonts-adf-irianis fonts-adf-libris fonts-adf-mekanus fonts-adf-oldania
  fonts-adf-romande fonts-adf-solothurn fonts-adf-switzera fonts-adf-tribun fonts-adf-universalis
  fonts-adf-verana fonts-lmodern fonts-cmu fonts-paratype fonts-junicode fonts-go fonts-hack fonts-firacode
  fonts-comic-neue python3-fonttools python3-pil)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "glyph fonts: ${#packages[@]} packages installed"
