//! The implant's side of an update, sans-IO: boot choice, chunked receive into the
//! inactive slot, verification, trial boot, confirmation or revert, key rotation.
//!
//! **Owns:** which slot runs, what has been received, what was verified, the security
//! counter's advance, the events it reports.
//!
//! **Must never:** write the slot it runs from; boot an image no boot record names;
//! boot an unverified image; accept a chunk out of order; advance the security counter
//! before the new image confirmed itself; panic or allocate.
//!
//! # Call order
//!
//! ```text
//!  power-on ─► Updater::boot ─► (trial image?) ─► self-test ─► confirm(passed)
//!                 │                                              │
//!                 ▼                                              ▼ failed: restart → old
//!   begin(total, id) ─► receive(offset, chunk)* ─► verify ─► mark_for_trial ─► restart
//! ```
//!
//! * [`Updater::boot`] at every start: a pending trial is verified again and started
//!   (the record first says it is being tried, so that a restart before it confirms
//!   reverts); a trial that was tried and did not confirm is reverted; the confirmed
//!   image's integrity is checked.
//! * [`Updater::begin`] opens a transfer into the inactive slot; [`Updater::receive`]
//!   takes chunks strictly in order (a gap, a replay or a chunk past the end is refused
//!   with the offset wanted); [`Updater::status`] says what the implant has, so a
//!   programmer resumes after a dropped link; each chunk is counted in a transfer record
//!   (two copies) once it is written, so the transfer also resumes after a restart.
//! * [`Updater::verify`] checks the received image against the trusted keys, the
//!   security counter, the running version and the hardware;
//!   [`Updater::mark_for_trial`] writes the boot record that names it for the next start.
//! * [`Updater::confirm`] after the trial image's self-test: passed, the record makes
//!   it the confirmed image and raises the security counter to the image's; failed,
//!   the record drops the trial and the implant must restart into the old image.
//! * [`Updater::poll_event`] hands out what happened, refusals included, for the log.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::image::{
    self, HardwareId, ImageError, ImageInfo, ImageSource, Policy, Version, stated_len,
};
use crate::keys::{KeyRefusal, TrustList};
use crate::storage::{self, BootRecord, Region, Slot, Storage, Trial, TrialState};

/// The slot size of the reference implant (256 KiB): the signing tool refuses an image
/// larger, and the virtual implant's slots have this size.
pub const REFERENCE_SLOT_SIZE: u32 = 256 * 1024;

/// The largest chunk accepted, bytes.
pub const CHUNK_MAX: usize = 768;
/// The events held until polled; more are counted as dropped.
pub const EVENTS_MAX: usize = 16;

/// Why a step of an update is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// No transfer is open.
    NoTransfer,
    /// The chunk starts after the next byte wanted (a gap, or a reordered chunk).
    Gap {
        /// The offset wanted.
        expected: u32,
        /// The chunk's offset.
        got: u32,
    },
    /// The chunk starts before the next byte wanted (a replay or a duplicate).
    Replay {
        /// The offset wanted.
        expected: u32,
        /// The chunk's offset.
        got: u32,
    },
    /// The chunk ends past the announced image.
    BeyondImage {
        /// The chunk's end.
        end: u32,
        /// The image's length.
        total: u32,
    },
    /// A chunk that is empty or longer than [`CHUNK_MAX`].
    ChunkLength {
        /// Its length.
        len: u32,
    },
    /// The image does not fit a slot.
    TooLarge {
        /// Its length.
        total: u32,
        /// The slot's size.
        max: u32,
    },
    /// The image is shorter than a header and TLVs.
    TooSmall {
        /// Its length.
        total: u32,
    },
    /// Not all of the image has been received.
    Incomplete {
        /// Bytes received.
        have: u32,
        /// The image's length.
        total: u32,
    },
    /// The received image has not been verified.
    NotVerified,
    /// The implant runs an image on trial: it must confirm (or revert) first.
    TrialRunning,
    /// An image is marked for trial at the next start: cancel it first.
    TrialPending,
    /// The implant must restart (its trial image failed its self-test).
    RestartRequired,
    /// Confirmation outside a trial.
    NotOnTrial,
    /// The image is refused.
    Image(ImageError),
    /// A key statement is refused.
    Key(KeyRefusal),
    /// The storage failed.
    Storage,
}

impl Refusal {
    /// A stable code for logs and the link (image and key refusals keep their own).
    pub const fn code(&self) -> u8 {
        match self {
            Refusal::NoTransfer => 20,
            Refusal::Gap { .. } => 21,
            Refusal::Replay { .. } => 22,
            Refusal::BeyondImage { .. } => 23,
            Refusal::ChunkLength { .. } => 24,
            Refusal::TooLarge { .. } => 25,
            Refusal::TooSmall { .. } => 26,
            Refusal::Incomplete { .. } => 27,
            Refusal::NotVerified => 28,
            Refusal::TrialRunning => 29,
            Refusal::TrialPending => 30,
            Refusal::RestartRequired => 31,
            Refusal::NotOnTrial => 32,
            Refusal::Storage => 33,
            Refusal::Image(e) => e.code(),
            Refusal::Key(k) => k.code(),
        }
    }
}

/// A refusal's or a revert's logged code in a few words (the codes of [`Refusal::code`],
/// [`ImageError::code`], [`KeyRefusal::code`] and [`RevertCause::code`]); `None` for a
/// code this build does not know.
pub const fn code_text(code: u8) -> Option<&'static str> {
    Some(match code {
        1 => "self-test failed",
        2 => "restarted before it confirmed itself",
        20 => "no transfer open",
        21 => "chunk leaves a gap",
        22 => "chunk already received",
        23 => "chunk past the image's end",
        24 => "chunk length out of range",
        25 => "image too large for a slot",
        26 => "image too small",
        27 => "image incomplete",
        28 => "image not verified",
        29 => "an image is on trial",
        30 => "an image is marked for trial",
        31 => "restart required",
        32 => "no image on trial",
        33 => "storage failed",
        40 => "image truncated",
        41 => "trailing bytes after the image",
        42 => "not an image (bad magic)",
        43 => "bad image header",
        44 => "malformed TLV area",
        45 => "a required TLV is missing",
        46 => "a TLV is repeated",
        47 => "unknown TLV",
        48 => "digest mismatch",
        49 => "signed by an untrusted key",
        50 => "signed by a revoked key",
        51 => "bad signature",
        52 => "rollback: security counter below the implant's",
        53 => "downgrade: older than the running version",
        54 => "for other hardware",
        55 => "image storage failed",
        60 => "statement not signed by a trusted key",
        61 => "not a valid Ed25519 key",
        62 => "key already trusted",
        63 => "key was revoked and cannot return",
        64 => "trusted-keys list full",
        65 => "key not in the trusted list",
        66 => "key already revoked",
        67 => "it is the last trusted key",
        _ => return None,
    })
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoTransfer => f.write_str("no update transfer is open"),
            Refusal::Gap { expected, got } => {
                write!(
                    f,
                    "chunk at {got} leaves a gap: the implant wants offset {expected}"
                )
            }
            Refusal::Replay { expected, got } => write!(
                f,
                "chunk at {got} was already received: the implant wants offset {expected}"
            ),
            Refusal::BeyondImage { end, total } => {
                write!(f, "chunk ends at {end}, past the image's {total} bytes")
            }
            Refusal::ChunkLength { len } => {
                write!(f, "a chunk of {len} bytes (1 to {CHUNK_MAX} accepted)")
            }
            Refusal::TooLarge { total, max } => {
                write!(
                    f,
                    "an image of {total} bytes does not fit a {max}-byte slot"
                )
            }
            Refusal::TooSmall { total } => {
                write!(f, "{total} bytes cannot hold an image header and its TLVs")
            }
            Refusal::Incomplete { have, total } => {
                write!(f, "only {have} of {total} bytes received")
            }
            Refusal::NotVerified => f.write_str("the received image has not been verified"),
            Refusal::TrialRunning => f.write_str(
                "the implant runs an image on trial: it must confirm itself or revert first",
            ),
            Refusal::TrialPending => {
                f.write_str("an image is marked for trial at the next start: cancel it first")
            }
            Refusal::RestartRequired => {
                f.write_str("the trial image failed its self-test: the implant must restart")
            }
            Refusal::NotOnTrial => f.write_str("no image is on trial"),
            Refusal::Image(e) => write!(f, "{e}"),
            Refusal::Key(k) => write!(f, "{k}"),
            Refusal::Storage => f.write_str("the update storage failed"),
        }
    }
}

/// Why a trial ended without confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevertCause {
    /// The trial image's self-test failed.
    SelfTestFailed,
    /// The implant restarted before the trial image confirmed itself.
    NotConfirmed,
    /// The image on trial did not verify at the start.
    ImageInvalid(ImageError),
}

impl RevertCause {
    /// A stable code for logs: 1 self-test failed, 2 not confirmed, an image that did
    /// not verify its image error's code (40 and above).
    pub const fn code(&self) -> u8 {
        match self {
            RevertCause::SelfTestFailed => 1,
            RevertCause::NotConfirmed => 2,
            RevertCause::ImageInvalid(e) => e.code(),
        }
    }
}

/// An updater step, for the implant's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// [`Updater::begin`].
    Begin,
    /// [`Updater::receive`].
    Chunk,
    /// [`Updater::verify`].
    Verify,
    /// [`Updater::mark_for_trial`].
    MarkTrial,
    /// [`Updater::cancel`].
    Cancel,
    /// [`Updater::confirm`].
    Confirm,
    /// [`Updater::rotate_key`].
    RotateKey,
    /// [`Updater::revoke_key`].
    RevokeKey,
}

impl Op {
    /// A stable code for logs (FWU-012).
    pub const fn code(&self) -> u8 {
        match self {
            Op::Begin => 1,
            Op::Chunk => 2,
            Op::Verify => 3,
            Op::MarkTrial => 4,
            Op::Cancel => 5,
            Op::Confirm => 6,
            Op::RotateKey => 7,
            Op::RevokeKey => 8,
        }
    }
}

/// What happened, for the implant's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateEvent {
    /// The implant started an image.
    Booted {
        /// Its slot.
        slot: Slot,
        /// Its version.
        version: Version,
        /// On trial (not confirmed yet).
        trial: bool,
    },
    /// A transfer opened.
    TransferStarted {
        /// Into this slot.
        slot: Slot,
        /// The image's length.
        total: u32,
    },
    /// Every byte has arrived.
    TransferComplete {
        /// The image's length.
        total: u32,
    },
    /// The received image verified.
    Verified {
        /// Its version.
        version: Version,
        /// Its security counter.
        security_counter: u32,
    },
    /// The image is marked for trial at the next start.
    TrialMarked {
        /// Its slot.
        slot: Slot,
    },
    /// The image on trial confirmed itself: it is the implant's image now.
    Confirmed {
        /// Its version.
        version: Version,
        /// The security counter now.
        security_counter: u32,
    },
    /// A trial ended: the next start (or this one) runs the confirmed image.
    Reverted {
        /// The confirmed image's slot.
        to: Slot,
        /// Why.
        cause: RevertCause,
    },
    /// A transfer or a pending trial was cancelled.
    Cancelled,
    /// The trusted keys changed (a rotation or a revocation).
    KeysChanged {
        /// Keys trusted and not revoked now.
        active: u8,
    },
    /// A step was refused.
    Refused {
        /// Which step.
        op: Op,
        /// Why.
        refusal: Refusal,
    },
}

impl UpdateEvent {
    /// A stable code for logs (FWU-012): 1 booted, 2 transfer started, 3 transfer
    /// complete, 4 verified, 5 trial marked, 6 confirmed, 7 reverted, 8 cancelled,
    /// 9 keys changed, 10 refused (the step's [`Op::code`] and the [`Refusal::code`]
    /// go with it).
    pub const fn code(&self) -> u8 {
        match self {
            UpdateEvent::Booted { .. } => 1,
            UpdateEvent::TransferStarted { .. } => 2,
            UpdateEvent::TransferComplete { .. } => 3,
            UpdateEvent::Verified { .. } => 4,
            UpdateEvent::TrialMarked { .. } => 5,
            UpdateEvent::Confirmed { .. } => 6,
            UpdateEvent::Reverted { .. } => 7,
            UpdateEvent::Cancelled => 8,
            UpdateEvent::KeysChanged { .. } => 9,
            UpdateEvent::Refused { .. } => 10,
        }
    }
}

/// Why the implant cannot start an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootError {
    /// No valid boot record (an unprovisioned or corrupt store).
    NoRecord,
    /// The confirmed image is damaged.
    ConfirmedImageInvalid(ImageError),
}

/// A transfer under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferStatus {
    /// The image's length.
    pub total: u32,
    /// The bytes received (the next offset wanted).
    pub have: u32,
    /// The programmer's label of the image (the SHA-256 of the file).
    pub image_id: [u8; 32],
}

/// What the implant reports about updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// The running image's version.
    pub running: Version,
    /// Its slot.
    pub slot: Slot,
    /// It runs on trial.
    pub on_trial: bool,
    /// The security counter.
    pub security_counter: u32,
    /// The implant's hardware.
    pub hardware: HardwareId,
    /// A transfer under way.
    pub transfer: Option<TransferStatus>,
    /// The received image, once verified.
    pub verified: Option<ImageInfo>,
    /// An image is marked for trial at the next start.
    pub trial_pending: bool,
}

/// The outcome of [`Updater::confirm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Confirmation {
    /// The new image is the implant's; the security counter is raised.
    Confirmed,
    /// The trial is dropped: restart into the confirmed image.
    Reverted,
}

/// A slot of the storage, up to `len` bytes, as an image.
struct SlotImage<'a, S: ?Sized> {
    storage: &'a S,
    slot: Slot,
    len: u32,
}

impl<S: Storage + ?Sized> ImageSource for SlotImage<'_, S> {
    fn len(&self) -> u32 {
        self.len
    }
    fn read(&self, offset: u32, buf: &mut [u8]) -> Result<(), ImageError> {
        let end = u32::try_from(buf.len())
            .ok()
            .and_then(|n| offset.checked_add(n))
            .ok_or(ImageError::Storage)?;
        if end > self.len {
            return Err(ImageError::Storage);
        }
        self.storage
            .read(Region::Slot(self.slot), offset, buf)
            .map_err(|_| ImageError::Storage)
    }
}

/// The length an image in `slot` states (`len`: the transfer's, if known).
fn slot_image<'a, S: Storage + ?Sized>(
    storage: &'a S,
    slot: Slot,
    len: Option<u32>,
) -> Result<SlotImage<'a, S>, ImageError> {
    let whole = SlotImage {
        storage,
        slot,
        len: storage.slot_size(),
    };
    let len = match len {
        Some(l) => l.min(whole.len),
        None => stated_len(&whole)?,
    };
    if len > whole.len {
        return Err(ImageError::Truncated {
            len: whole.len,
            needed: len,
        });
    }
    Ok(SlotImage { storage, slot, len })
}

/// The implant's update state.
#[derive(Debug)]
pub struct Updater {
    hardware: HardwareId,
    record: BootRecord,
    copy: u8,
    running: Slot,
    running_info: ImageInfo,
    on_trial: bool,
    must_restart: bool,
    transfer: Option<TransferStatus>,
    /// The transfer record's copy in force and its sequence number (FWU-014).
    transfer_copy: u8,
    transfer_seq: u32,
    verified: Option<ImageInfo>,
    events: heapless::Deque<UpdateEvent, EVENTS_MAX>,
    dropped: u32,
}

/// Writes the first boot record (factory): `confirmed` holds the image, signed by one of
/// `keys`, and no image below `security_counter` will be accepted.
pub fn provision<S: Storage + ?Sized>(
    storage: &mut S,
    confirmed: Slot,
    keys: TrustList,
    security_counter: u32,
) -> Result<(), storage::StorageError> {
    let record = BootRecord {
        seq: 1,
        confirmed,
        trial: None,
        security_counter,
        keys,
    };
    storage.write(Region::Record(0), 0, &record.encode())?;
    storage.write(Region::Record(1), 0, &[0u8; storage::RECORD_LEN])
}

impl Updater {
    /// Chooses and checks the image to run at power-on (module docs). Writes the boot
    /// record when a trial starts or ends.
    pub fn boot<S: Storage + ?Sized>(
        storage: &mut S,
        hardware: HardwareId,
    ) -> Result<Updater, BootError> {
        let (record, copy) = storage::load(storage).ok_or(BootError::NoRecord)?;
        let confirmed = record.confirmed;
        let confirmed_info = {
            let src =
                slot_image(storage, confirmed, None).map_err(BootError::ConfirmedImageInvalid)?;
            integrity(&src).map_err(BootError::ConfirmedImageInvalid)?
        };
        let mut u = Updater {
            hardware,
            record,
            copy,
            running: confirmed,
            running_info: confirmed_info,
            on_trial: false,
            must_restart: false,
            transfer: None,
            transfer_copy: 1,
            transfer_seq: 0,
            verified: None,
            events: heapless::Deque::new(),
            dropped: 0,
        };
        match u.record.trial {
            Some(Trial {
                slot,
                state: TrialState::Pending,
            }) => {
                let policy = u.policy(Some(confirmed_info.version));
                let checked = slot_image(storage, slot, None)
                    .and_then(|src| image::verify(&src, &u.record.keys, &policy));
                match checked {
                    Ok(info) => {
                        let mut next = u.record.clone();
                        next.trial = Some(Trial {
                            slot,
                            state: TrialState::Trying,
                        });
                        // Only a trial that is recorded as tried may run: a restart
                        // before it confirms must revert.
                        if u.commit(storage, next).is_ok() {
                            u.running = slot;
                            u.running_info = info;
                            u.on_trial = true;
                        }
                    }
                    Err(e) => u.revert(storage, RevertCause::ImageInvalid(e)),
                }
            }
            Some(Trial {
                state: TrialState::Trying,
                ..
            }) => u.revert(storage, RevertCause::NotConfirmed),
            None => {}
        }
        u.resume_transfer(storage);
        u.event(UpdateEvent::Booted {
            slot: u.running,
            version: u.running_info.version,
            trial: u.on_trial,
        });
        Ok(u)
    }

    /// At the start: the transfer the record says was under way, if it began under the
    /// boot record in force, into the slot that is not running, and no trial is pending
    /// (FWU-014). Only what a complete record write counted is resumed: a chunk torn by
    /// the power cut was never counted, so it is sent again.
    fn resume_transfer<S: Storage + ?Sized>(&mut self, storage: &S) {
        let Some((r, copy)) = storage::load_transfer(storage) else {
            return;
        };
        self.transfer_copy = copy;
        self.transfer_seq = r.seq;
        let current = r.boot_seq == self.record.seq
            && self.record.trial.is_none()
            && !self.on_trial
            && r.slot == self.running.other()
            && r.total > 0
            && r.total <= storage.slot_size();
        if current {
            self.transfer = Some(TransferStatus {
                total: r.total,
                have: r.have,
                image_id: r.image_id,
            });
        }
    }

    /// Writes the transfer record (`None`: no transfer) to the copy not in force.
    fn save_transfer<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        t: Option<TransferStatus>,
    ) -> Result<(), Refusal> {
        let seq = self.transfer_seq.checked_add(1).ok_or(Refusal::Storage)?;
        let target = if self.transfer_copy == 0 { 1 } else { 0 };
        let r = storage::TransferRecord {
            seq,
            boot_seq: self.record.seq,
            slot: self.running.other(),
            total: t.map_or(0, |t| t.total),
            have: t.map_or(0, |t| t.have),
            image_id: t.map_or([0; 32], |t| t.image_id),
        };
        storage
            .write(Region::Transfer(target), 0, &r.encode())
            .map_err(|_| Refusal::Storage)?;
        self.transfer_seq = seq;
        self.transfer_copy = target;
        Ok(())
    }

    fn revert<S: Storage + ?Sized>(&mut self, storage: &mut S, cause: RevertCause) {
        let mut next = self.record.clone();
        next.trial = None;
        // If the write fails the record still names the trial; the next start
        // reverts again.
        let _ = self.commit(storage, next);
        self.event(UpdateEvent::Reverted {
            to: self.record.confirmed,
            cause,
        });
    }

    fn policy(&self, min_version: Option<Version>) -> Policy {
        Policy {
            hardware: self.hardware,
            min_counter: self.record.security_counter,
            min_version,
        }
    }

    fn commit<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        mut next: BootRecord,
    ) -> Result<(), Refusal> {
        next.seq = self.record.seq.checked_add(1).ok_or(Refusal::Storage)?;
        let target = if self.copy == 0 { 1 } else { 0 };
        storage
            .write(Region::Record(target), 0, &next.encode())
            .map_err(|_| Refusal::Storage)?;
        self.record = next;
        self.copy = target;
        Ok(())
    }

    fn event(&mut self, e: UpdateEvent) {
        if self.events.push_back(e).is_err() {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    fn refuse<T>(&mut self, op: Op, refusal: Refusal) -> Result<T, Refusal> {
        self.event(UpdateEvent::Refused { op, refusal });
        Err(refusal)
    }

    /// The next event to log.
    pub fn poll_event(&mut self) -> Option<UpdateEvent> {
        self.events.pop_front()
    }

    /// Events lost because the queue was full.
    pub const fn dropped_events(&self) -> u32 {
        self.dropped
    }

    /// What the implant reports.
    pub fn status(&self) -> UpdateStatus {
        UpdateStatus {
            running: self.running_info.version,
            slot: self.running,
            on_trial: self.on_trial,
            security_counter: self.record.security_counter,
            hardware: self.hardware,
            transfer: self.transfer,
            verified: self.verified,
            trial_pending: self
                .record
                .trial
                .is_some_and(|t| t.state == TrialState::Pending),
        }
    }

    /// The running image.
    pub const fn running(&self) -> (Slot, &ImageInfo) {
        (self.running, &self.running_info)
    }

    /// The trusted keys.
    pub const fn keys(&self) -> &TrustList {
        &self.record.keys
    }

    fn busy(&self) -> Option<Refusal> {
        if self.must_restart {
            Some(Refusal::RestartRequired)
        } else if self.on_trial {
            Some(Refusal::TrialRunning)
        } else if self.record.trial.is_some() {
            Some(Refusal::TrialPending)
        } else {
            None
        }
    }

    /// Opens a transfer of `total` bytes into the inactive slot (a transfer under way is
    /// dropped) and writes its transfer record (FWU-014). `image_id` is the programmer's label, reported back by
    /// [`Updater::status`] so that it resumes only its own image.
    pub fn begin<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        total: u32,
        image_id: [u8; 32],
    ) -> Result<(), Refusal> {
        if let Some(r) = self.busy() {
            return self.refuse(Op::Begin, r);
        }
        let max = storage.slot_size();
        if total > max {
            return self.refuse(Op::Begin, Refusal::TooLarge { total, max });
        }
        let min = (image::HEADER_LEN + 4 + image::UNPROTECTED_LEN) as u32;
        if total < min {
            return self.refuse(Op::Begin, Refusal::TooSmall { total });
        }
        let t = TransferStatus {
            total,
            have: 0,
            image_id,
        };
        self.transfer = None;
        self.verified = None;
        if let Err(r) = self.save_transfer(storage, Some(t)) {
            return self.refuse(Op::Begin, r);
        }
        self.transfer = Some(t);
        self.event(UpdateEvent::TransferStarted {
            slot: self.running.other(),
            total,
        });
        Ok(())
    }

    /// Writes the chunk at `offset` into the inactive slot; returns the next offset
    /// wanted. Chunks must come in order, without gaps or repeats.
    pub fn receive<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        offset: u32,
        data: &[u8],
    ) -> Result<u32, Refusal> {
        let Some(mut t) = self.transfer else {
            return self.refuse(Op::Chunk, Refusal::NoTransfer);
        };
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        if data.is_empty() || data.len() > CHUNK_MAX {
            return self.refuse(Op::Chunk, Refusal::ChunkLength { len });
        }
        if offset < t.have {
            let r = Refusal::Replay {
                expected: t.have,
                got: offset,
            };
            return self.refuse(Op::Chunk, r);
        }
        if offset > t.have {
            let r = Refusal::Gap {
                expected: t.have,
                got: offset,
            };
            return self.refuse(Op::Chunk, r);
        }
        let end = offset.saturating_add(len);
        if end > t.total {
            let r = Refusal::BeyondImage {
                end,
                total: t.total,
            };
            return self.refuse(Op::Chunk, r);
        }
        if storage
            .write(Region::Slot(self.running.other()), offset, data)
            .is_err()
        {
            return self.refuse(Op::Chunk, Refusal::Storage);
        }
        t.have = end;
        // Counted only once its bytes are written: after a restart the transfer resumes
        // from the last chunk a whole record counted.
        if let Err(r) = self.save_transfer(storage, Some(t)) {
            return self.refuse(Op::Chunk, r);
        }
        self.transfer = Some(t);
        self.verified = None;
        if end == t.total {
            self.event(UpdateEvent::TransferComplete { total: t.total });
        }
        Ok(end)
    }

    /// Verifies the received image: a trusted, unrevoked key's strict signature over its
    /// digest, the digest, the hardware, a security counter not below the implant's and
    /// a version not older than the running one.
    pub fn verify<S: Storage + ?Sized>(&mut self, storage: &S) -> Result<ImageInfo, Refusal> {
        let Some(t) = self.transfer else {
            return self.refuse(Op::Verify, Refusal::NoTransfer);
        };
        if t.have < t.total {
            let r = Refusal::Incomplete {
                have: t.have,
                total: t.total,
            };
            return self.refuse(Op::Verify, r);
        }
        let policy = self.policy(Some(self.running_info.version));
        let checked = slot_image(storage, self.running.other(), Some(t.total))
            .and_then(|src| image::verify(&src, &self.record.keys, &policy));
        match checked {
            Ok(info) => {
                self.verified = Some(info);
                self.event(UpdateEvent::Verified {
                    version: info.version,
                    security_counter: info.security_counter,
                });
                Ok(info)
            }
            Err(e) => self.refuse(Op::Verify, Refusal::Image(e)),
        }
    }

    /// Names the verified image for a trial at the next start (the caller then
    /// restarts the implant).
    pub fn mark_for_trial<S: Storage + ?Sized>(&mut self, storage: &mut S) -> Result<(), Refusal> {
        if let Some(r) = self.busy() {
            return self.refuse(Op::MarkTrial, r);
        }
        if self.verified.is_none() {
            return self.refuse(Op::MarkTrial, Refusal::NotVerified);
        }
        let slot = self.running.other();
        let mut next = self.record.clone();
        next.trial = Some(Trial {
            slot,
            state: TrialState::Pending,
        });
        if let Err(r) = self.commit(storage, next) {
            return self.refuse(Op::MarkTrial, r);
        }
        self.transfer = None;
        self.verified = None;
        self.event(UpdateEvent::TrialMarked { slot });
        Ok(())
    }

    /// Drops a transfer under way and a trial marked for the next start.
    pub fn cancel<S: Storage + ?Sized>(&mut self, storage: &mut S) -> Result<(), Refusal> {
        if self.transfer.is_some() {
            if let Err(r) = self.save_transfer(storage, None) {
                return self.refuse(Op::Cancel, r);
            }
        }
        self.transfer = None;
        self.verified = None;
        if !self.on_trial && self.record.trial.is_some() {
            let mut next = self.record.clone();
            next.trial = None;
            if let Err(r) = self.commit(storage, next) {
                return self.refuse(Op::Cancel, r);
            }
        }
        self.event(UpdateEvent::Cancelled);
        Ok(())
    }

    /// After the trial image's self-test: passed, it becomes the confirmed image and the
    /// security counter rises to its own; failed, the trial is dropped and the implant
    /// must restart into the confirmed image.
    pub fn confirm<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        self_test_passed: bool,
    ) -> Result<Confirmation, Refusal> {
        if !self.on_trial {
            return self.refuse(Op::Confirm, Refusal::NotOnTrial);
        }
        let mut next = self.record.clone();
        next.trial = None;
        if self_test_passed {
            next.confirmed = self.running;
            next.security_counter = next
                .security_counter
                .max(self.running_info.security_counter);
        }
        if let Err(r) = self.commit(storage, next) {
            return self.refuse(Op::Confirm, r);
        }
        self.on_trial = false;
        if self_test_passed {
            self.event(UpdateEvent::Confirmed {
                version: self.running_info.version,
                security_counter: self.record.security_counter,
            });
            Ok(Confirmation::Confirmed)
        } else {
            self.must_restart = true;
            self.event(UpdateEvent::Reverted {
                to: self.record.confirmed,
                cause: RevertCause::SelfTestFailed,
            });
            Ok(Confirmation::Reverted)
        }
    }

    /// Rotates to `new`, signed by a trusted key (which is then revoked).
    pub fn rotate_key<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        new: &[u8; 32],
        signature: &[u8; 64],
    ) -> Result<(), Refusal> {
        match self.record.keys.rotated(new, signature) {
            Ok(keys) => self.set_keys(storage, keys, Op::RotateKey),
            Err(k) => self.refuse(Op::RotateKey, Refusal::Key(k)),
        }
    }

    /// Revokes `subject`, signed by a trusted key.
    pub fn revoke_key<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        subject: &[u8; 32],
        signature: &[u8; 64],
    ) -> Result<(), Refusal> {
        match self.record.keys.revoked(subject, signature) {
            Ok(keys) => self.set_keys(storage, keys, Op::RevokeKey),
            Err(k) => self.refuse(Op::RevokeKey, Refusal::Key(k)),
        }
    }

    fn set_keys<S: Storage + ?Sized>(
        &mut self,
        storage: &mut S,
        keys: TrustList,
        op: Op,
    ) -> Result<(), Refusal> {
        let mut next = self.record.clone();
        next.keys = keys;
        if let Err(r) = self.commit(storage, next) {
            return self.refuse(op, r);
        }
        // A verified image may have been signed by the key just revoked.
        self.verified = None;
        let active = self.record.keys.iter().filter(|k| !k.revoked).count();
        self.event(UpdateEvent::KeysChanged {
            active: u8::try_from(active).unwrap_or(u8::MAX),
        });
        Ok(())
    }
}

/// The confirmed image's check at every start: well formed and its digest matches
/// (its signature was checked when it was accepted; a later revocation of its key
/// refuses the next image it signs, not the firmware running).
fn integrity<S: ImageSource + ?Sized>(src: &S) -> Result<ImageInfo, ImageError> {
    let parsed = image::parse(src)?;
    if image::digest(src, parsed.hashed_len)? != parsed.info.digest {
        return Err(ImageError::HashMismatch);
    }
    Ok(parsed.info)
}
