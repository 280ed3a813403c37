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
  # The firmware image around the core (QEMU's Cortex-M4 board mps2-an386).
  (cd firmware-size && cargo build --release --quiet)
  if command -v qemu-system-arm >/dev/null 2>&1; then
    echo "== the core on a Cortex-M4 (QEMU mps2-an386): the scripted stream, compared with x86-64"
    fw_out="$PWD/target/firmware-qemu.out"
    mkdir -p target
    t0=$(date +%s%N)
    timeout 600 qemu-system-arm -M mps2-an386 -nographic -semihosting-config enable=on,target=native \
      -kernel firmware-size/target/thumbv7em-none-eabihf/release/thecal-firmware-size >"$fw_out"
    t1=$(date +%s%N)
    cat "$fw_out"
    echo "qemu_wall_ms $(((t1 - t0) / 1000000)) (five simulated days)"
    # PUMP-050: static RAM + the painted stack's high-water mark under 32 KiB.
    ram=$(awk '$1 == "ram_total" {print $2}' "$fw_out")
    if [ -z "$ram" ]; then
      echo "FAIL: the Cortex-M4 run printed no ram_total (PUMP-050)"
      exit 1
    elif [ "$ram" -lt 32768 ]; then
      echo "RAM (static + stack high-water) $ram bytes: within the 32 KiB budget (PUMP-050)"
    else
      echo "FAIL: RAM (static + stack high-water) $ram bytes is over the 32 KiB budget of 32768 bytes (PUMP-050)"
      exit 1
    fi
    THECAL_FIRMWARE_OUTPUT="$fw_out" cargo test --quiet -p thecal-pump --test firmware_stream
  else
    echo "notice: qemu-system-arm is not installed; the Cortex-M4 run is skipped"
  fi
else
  echo "notice: target thumbv7em-none-eabihf is not installed; embedded build and Cortex-M4 run skipped"
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
