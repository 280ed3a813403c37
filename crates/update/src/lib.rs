//! # thecal-update: signed firmware update with anti-rollback
//!
//! The implant's side of a firmware update and the image format its signing tool
//! writes, so that the implant runs only firmware its maker signed, never an older
//! vulnerable version and never a half-written one (docs/firmware-update.md). Like the
//! therapy core it is sans-IO and `no_std` without an allocator: the firmware passes in
//! its flash ([`storage::Storage`]) and gets events out ([`updater::Updater::poll_event`]).
//!
//! | module | owns | must never |
//! |---|---|---|
//! | [`image`] | the MCUboot-style header and TLVs, parser, verifier, signer | accept an image whose hash, key, signature, counter or hardware does not check |
//! | [`keys`] | the trusted keys, rotation and revocation | trust a key no trusted key signed for, or a revoked key again |
//! | [`storage`] | the storage trait, the A/B boot record | return a torn or stale record |
//! | [`updater`] | boot choice, chunked receive, verify, trial, confirm, revert | write the running slot, boot an unverified image, advance the counter before confirmation |
#![no_std]
#![forbid(unsafe_code)]
#![allow(clippy::large_enum_variant, clippy::result_large_err)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::float_arithmetic
)]

#[cfg(feature = "std")]
extern crate std;

pub mod image;
pub mod keys;
#[cfg(feature = "std")]
pub mod mem;
pub mod storage;
pub mod updater;

pub use image::{HardwareId, ImageError, ImageInfo, Manifest, Version};
pub use keys::{KeyRefusal, TrustList};
pub use storage::{Region, Slot, Storage, StorageError};
pub use updater::{Confirmation, Refusal, UpdateEvent, UpdateStatus, Updater};
