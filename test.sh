#!/usr/bin/env bash
# Runs every test of thecal: formatting, lints, the firmware crates' embedded build,
# and the whole test suite. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")"

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

echo "== embedded build of the firmware crates (thumbv7em-none-eabihf)"
if rustup target list --installed 2>/dev/null | grep -qx thumbv7em-none-eabihf; then
  cargo build --release --target thumbv7em-none-eabihf -p thecal-rx -p thecal-pump -p thecal-link -p thecal-update
  # A minimal firmware image around the core: it must link with the whole core kept.
  (cd firmware-size && cargo build --release --quiet)
else
  echo "notice: target thumbv7em-none-eabihf is not installed; embedded build skipped"
fi

echo "== the fuzz target compiles (run it with cargo-fuzz: see fuzz/README.md)"
(cd fuzz && cargo check --quiet --bins)

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
cargo test --workspace --doc

echo "== property-based API test of thecal serve from its OpenAPI description (schemathesis)"
crates/clinic/schemathesis.sh
