#!/usr/bin/env bash
# Creates .venv with clap_jax (editable), its test extra and the official msclap reference.
set -euo pipefail
cd "$(dirname "$0")/.."
# Java runs the caption metrics' tokenizer, METEOR and SPICE (pycocoevalcap ships their jars).
if ! command -v java >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless
fi
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e '.[test]'
# msclap's own pins clash with ours; only its model code is used, as the parity reference.
.venv/bin/pip install --quiet --no-deps msclap==1.3.4
