//! The signed image: an MCUboot image header, the body, a protected TLV area and an
//! unprotected TLV area (docs/firmware-update.md, FWU-001).
//!
//! **Owns:** the byte layout, the checked parser ([`parse`]), the verifier
//! ([`verify`]) and the signer ([`sign`]).
//!
//! **Must never:** accept an image whose hash, key, signature, security counter or
//! hardware does not check; read outside the image; panic on any bytes.
//!
//! # Layout (all integers little-endian, as MCUboot)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 32 | header: magic `0x96f3b83d`, load address, header size (32), protected TLV size, body size, flags (0), version (major, minor, revision, build), padding |
//! | 32 | body size | the firmware |
//! | … | protected TLV size | info `0x6908` + total; TLVs `SEC_CNT` (0x50, u32) and `HW_ID` (0xa0, 1–16 ASCII bytes) |
//! | … | … | info `0x6907` + total; TLVs `KEYHASH` (0x01, SHA-256 of the key), `SHA256` (0x10) and `ED25519` (0x24) |
//!
//! The SHA-256 covers the header, the body and the protected TLV area; the Ed25519
//! signature is over that 32-byte digest (MCUboot's Ed25519 mode). Each TLV occurs
//! exactly once and no other TLV is accepted.
//!
//! # Panic freedom
//!
//! [`parse`] and [`verify`] read any [`ImageSource`] of any length through checked
//! offsets and `get`; every size is checked arithmetic.

use core::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{TrustList, key_hash};

/// The image header's magic number (MCUboot `IMAGE_MAGIC`).
pub const IMAGE_MAGIC: u32 = 0x96f3_b83d;
/// The header's length: the only header size accepted.
pub const HEADER_LEN: usize = 32;
/// The magic of the protected TLV area's info header (MCUboot `IMAGE_TLV_PROT_INFO_MAGIC`).
pub const TLV_PROT_INFO_MAGIC: u16 = 0x6908;
/// The magic of the unprotected TLV area's info header (MCUboot `IMAGE_TLV_INFO_MAGIC`).
pub const TLV_INFO_MAGIC: u16 = 0x6907;
/// The longest hardware id, bytes.
pub const HARDWARE_ID_MAX: usize = 16;

/// TLV types (MCUboot's numbers; `HW_ID` is in the vendor range 0xa0–0xfe).
pub mod tlv {
    /// SHA-256 of the signing public key.
    pub const KEYHASH: u16 = 0x01;
    /// SHA-256 of header, body and protected TLVs.
    pub const SHA256: u16 = 0x10;
    /// Ed25519 signature over the SHA-256 digest.
    pub const ED25519: u16 = 0x24;
    /// Security counter, `u32` (protected).
    pub const SEC_CNT: u16 = 0x50;
    /// Hardware the image is built for (protected; thecal vendor TLV).
    pub const HW_ID: u16 = 0xa0;
}

/// The length of the unprotected TLV area: info, key hash, digest, signature.
pub const UNPROTECTED_LEN: usize = 4 + (4 + 32) + (4 + 32) + (4 + 64);

/// An image version (MCUboot `struct image_version`), compared field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Revision.
    pub revision: u16,
    /// Build number.
    pub build: u32,
}

impl Version {
    /// A version.
    pub const fn new(major: u8, minor: u8, revision: u16, build: u32) -> Self {
        Version {
            major,
            minor,
            revision,
            build,
        }
    }

    /// Parses `major.minor.revision` or `major.minor.revision+build`.
    pub fn parse(s: &str) -> Option<Self> {
        let (main, build) = match s.split_once('+') {
            Some((m, b)) => (m, b.parse().ok()?),
            None => (s, 0),
        };
        let mut parts = main.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let revision = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Version::new(major, minor, revision, build))
    }

    fn to_bytes(self) -> [u8; 8] {
        let r = self.revision.to_le_bytes();
        let b = self.build.to_le_bytes();
        [self.major, self.minor, r[0], r[1], b[0], b[1], b[2], b[3]]
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.revision)?;
        if self.build != 0 {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

/// The hardware an image is built for: 1 to [`HARDWARE_ID_MAX`] printable ASCII bytes
/// (a model name such as `synchromed-40`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardwareId {
    len: u8,
    bytes: [u8; HARDWARE_ID_MAX],
}

impl HardwareId {
    /// A hardware id from its bytes; `None` if empty, too long or not printable ASCII.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.is_empty() || b.len() > HARDWARE_ID_MAX || !b.iter().all(|c| c.is_ascii_graphic()) {
            return None;
        }
        let mut bytes = [0u8; HARDWARE_ID_MAX];
        bytes.get_mut(..b.len())?.copy_from_slice(b);
        Some(HardwareId {
            len: u8::try_from(b.len()).ok()?,
            bytes,
        })
    }

    /// A hardware id from a name.
    pub fn new(name: &str) -> Option<Self> {
        HardwareId::from_bytes(name.as_bytes())
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Its name.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("?")
    }
}

impl fmt::Debug for HardwareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HardwareId({:?})", self.as_str())
    }
}

impl fmt::Display for HardwareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlvKind {
    /// The signing key's hash.
    KeyHash,
    /// The image digest.
    Sha256,
    /// The signature.
    Ed25519,
    /// The security counter.
    SecurityCounter,
    /// The hardware id.
    HardwareId,
}

impl fmt::Display for TlvKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlvKind::KeyHash => "key hash",
            TlvKind::Sha256 => "SHA-256",
            TlvKind::Ed25519 => "Ed25519 signature",
            TlvKind::SecurityCounter => "security counter",
            TlvKind::HardwareId => "hardware id",
        })
    }
}

/// Why an image is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageError {
    /// The image ends before its header or one of its areas.
    Truncated {
        /// Bytes present.
        len: u32,
        /// Bytes the header and TLV areas need.
        needed: u32,
    },
    /// Bytes follow the unprotected TLV area.
    Trailing {
        /// Bytes present.
        len: u32,
        /// Bytes the image states.
        stated: u32,
    },
    /// The header's magic is not MCUboot's.
    BadMagic {
        /// The magic found.
        found: u32,
    },
    /// A header field is not the one accepted (header size, flags, padding).
    BadHeader,
    /// A TLV area's info header or a TLV's length is malformed.
    TlvMalformed,
    /// A required TLV is missing.
    MissingTlv(TlvKind),
    /// A TLV occurs twice.
    DuplicateTlv(TlvKind),
    /// A TLV type that is not accepted (or one in the wrong area).
    UnknownTlv {
        /// Its type.
        kind: u16,
    },
    /// The digest of header, body and protected TLVs differs from the SHA-256 TLV.
    HashMismatch,
    /// No trusted key has the key hash of the image.
    UnknownKey,
    /// The image is signed by a revoked key.
    RevokedKey,
    /// The signature does not verify (strictly) with the trusted key.
    BadSignature,
    /// The image's security counter is below the implant's (a rollback).
    Rollback {
        /// The image's counter.
        image: u32,
        /// The implant's stored counter.
        stored: u32,
    },
    /// The image's version is older than the running one.
    Downgrade {
        /// The image's version.
        image: Version,
        /// The running version.
        running: Version,
    },
    /// The image is built for other hardware.
    WrongHardware {
        /// The image's hardware id.
        image: HardwareId,
        /// The implant's.
        ours: HardwareId,
    },
    /// The storage could not be read.
    Storage,
}

impl ImageError {
    /// A stable code for logs and the link.
    pub const fn code(&self) -> u8 {
        match self {
            ImageError::Truncated { .. } => 40,
            ImageError::Trailing { .. } => 41,
            ImageError::BadMagic { .. } => 42,
            ImageError::BadHeader => 43,
            ImageError::TlvMalformed => 44,
            ImageError::MissingTlv(_) => 45,
            ImageError::DuplicateTlv(_) => 46,
            ImageError::UnknownTlv { .. } => 47,
            ImageError::HashMismatch => 48,
            ImageError::UnknownKey => 49,
            ImageError::RevokedKey => 50,
            ImageError::BadSignature => 51,
            ImageError::Rollback { .. } => 52,
            ImageError::Downgrade { .. } => 53,
            ImageError::WrongHardware { .. } => 54,
            ImageError::Storage => 55,
        }
    }
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::Truncated { len, needed } => {
                write!(
                    f,
                    "truncated image: {len} bytes, its header and TLVs need {needed}"
                )
            }
            ImageError::Trailing { len, stated } => write!(
                f,
                "{len} bytes, but the image states {stated}: bytes follow its TLVs"
            ),
            ImageError::BadMagic { found } => {
                write!(f, "not an MCUboot image (magic {found:#010x})")
            }
            ImageError::BadHeader => f.write_str(
                "unsupported image header (header size must be 32, flags and padding 0)",
            ),
            ImageError::TlvMalformed => f.write_str("malformed TLV area"),
            ImageError::MissingTlv(k) => write!(f, "the {k} TLV is missing"),
            ImageError::DuplicateTlv(k) => write!(f, "the {k} TLV occurs twice"),
            ImageError::UnknownTlv { kind } => write!(f, "TLV type {kind:#06x} is not accepted"),
            ImageError::HashMismatch => {
                f.write_str("hash mismatch: the image is not the one that was signed")
            }
            ImageError::UnknownKey => f.write_str("signed by a key this implant does not trust"),
            ImageError::RevokedKey => f.write_str("signed by a revoked key"),
            ImageError::BadSignature => f.write_str("bad signature"),
            ImageError::Rollback { image, stored } => write!(
                f,
                "rollback refused: security counter {image} is below the implant's {stored}"
            ),
            ImageError::Downgrade { image, running } => {
                write!(
                    f,
                    "downgrade refused: {image} is older than the running {running}"
                )
            }
            ImageError::WrongHardware { image, ours } => {
                write!(f, "image for hardware {image}, this implant is {ours}")
            }
            ImageError::Storage => f.write_str("the image could not be read from storage"),
        }
    }
}

/// Bytes an image is read from: a slice, or a slot of the implant's storage.
pub trait ImageSource {
    /// The number of bytes.
    fn len(&self) -> u32;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` from `offset`; an error if any of it is outside the source.
    fn read(&self, offset: u32, buf: &mut [u8]) -> Result<(), ImageError>;
}

impl ImageSource for [u8] {
    fn len(&self) -> u32 {
        u32::try_from(<[u8]>::len(self)).unwrap_or(u32::MAX)
    }
    fn read(&self, offset: u32, buf: &mut [u8]) -> Result<(), ImageError> {
        let start = usize::try_from(offset).map_err(|_| ImageError::Storage)?;
        let end = start.checked_add(buf.len()).ok_or(ImageError::Storage)?;
        buf.copy_from_slice(self.get(start..end).ok_or(ImageError::Storage)?);
        Ok(())
    }
}

/// What the image says about itself (checked or not: see [`parse`] and [`verify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The version.
    pub version: Version,
    /// The security counter.
    pub security_counter: u32,
    /// The hardware it is built for.
    pub hardware: HardwareId,
    /// The body's length.
    pub body_len: u32,
    /// The whole image's length.
    pub total_len: u32,
    /// The SHA-256 digest the image carries.
    pub digest: [u8; 32],
    /// The SHA-256 of the key that signed it.
    pub key_hash: [u8; 32],
}

/// A parsed, not yet verified, image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// What it says.
    pub info: ImageInfo,
    /// Its signature.
    pub signature: [u8; 64],
    /// The length the digest covers (header, body, protected TLVs).
    pub hashed_len: u32,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Walks the TLVs of the area `[start, start + total)` (the info header already read),
/// calling `each(type, value)`; the value is at most 64 bytes.
fn walk<S: ImageSource + ?Sized>(
    src: &S,
    start: u32,
    total: u32,
    mut each: impl FnMut(u16, &[u8]) -> Result<(), ImageError>,
) -> Result<(), ImageError> {
    let end = start.checked_add(total).ok_or(ImageError::TlvMalformed)?;
    let mut at = start.checked_add(4).ok_or(ImageError::TlvMalformed)?;
    while at < end {
        let mut head = [0u8; 4];
        if end.checked_sub(at).ok_or(ImageError::TlvMalformed)? < 4 {
            return Err(ImageError::TlvMalformed);
        }
        src.read(at, &mut head)?;
        let kind = u16::from_le_bytes([head[0], head[1]]);
        let len = u16::from_le_bytes([head[2], head[3]]);
        let value_at = at.checked_add(4).ok_or(ImageError::TlvMalformed)?;
        let value_end = value_at
            .checked_add(u32::from(len))
            .ok_or(ImageError::TlvMalformed)?;
        if value_end > end || len > 64 {
            return Err(ImageError::TlvMalformed);
        }
        let mut value = [0u8; 64];
        let value = value
            .get_mut(..usize::from(len))
            .ok_or(ImageError::TlvMalformed)?;
        src.read(value_at, value)?;
        each(kind, value)?;
        at = value_end;
    }
    Ok(())
}

fn set_once<T>(slot: &mut Option<T>, kind: TlvKind, v: T) -> Result<(), ImageError> {
    if slot.is_some() {
        return Err(ImageError::DuplicateTlv(kind));
    }
    *slot = Some(v);
    Ok(())
}

/// Parses an image's header and TLVs without checking hash, key or signature.
pub fn parse<S: ImageSource + ?Sized>(src: &S) -> Result<Parsed, ImageError> {
    let len = src.len();
    let header_len = HEADER_LEN as u32;
    if len < header_len {
        return Err(ImageError::Truncated {
            len,
            needed: header_len,
        });
    }
    let mut h = [0u8; HEADER_LEN];
    src.read(0, &mut h)?;
    let bad = ImageError::BadHeader;
    let magic = u32_at(&h, 0).ok_or(bad)?;
    if magic != IMAGE_MAGIC {
        return Err(ImageError::BadMagic { found: magic });
    }
    let hdr_size = u16_at(&h, 8).ok_or(bad)?;
    let prot_size = u16_at(&h, 10).ok_or(bad)?;
    let body_len = u32_at(&h, 12).ok_or(bad)?;
    let flags = u32_at(&h, 16).ok_or(bad)?;
    let pad = u32_at(&h, 28).ok_or(bad)?;
    if usize::from(hdr_size) != HEADER_LEN || flags != 0 || pad != 0 {
        return Err(bad);
    }
    let version = Version {
        major: *h.get(20).ok_or(bad)?,
        minor: *h.get(21).ok_or(bad)?,
        revision: u16_at(&h, 22).ok_or(bad)?,
        build: u32_at(&h, 24).ok_or(bad)?,
    };
    let overflow = ImageError::Truncated {
        len,
        needed: u32::MAX,
    };
    let prot_start = header_len.checked_add(body_len).ok_or(overflow)?;
    if prot_size == 0 {
        return Err(ImageError::MissingTlv(TlvKind::SecurityCounter));
    }
    let prot_info_end = prot_start.checked_add(4).ok_or(overflow)?;
    if len < prot_info_end {
        return Err(ImageError::Truncated {
            len,
            needed: prot_info_end,
        });
    }
    let mut info = [0u8; 4];
    src.read(prot_start, &mut info)?;
    if u16::from_le_bytes([info[0], info[1]]) != TLV_PROT_INFO_MAGIC
        || u16::from_le_bytes([info[2], info[3]]) != prot_size
    {
        return Err(ImageError::TlvMalformed);
    }
    let unprot_start = prot_start
        .checked_add(u32::from(prot_size))
        .ok_or(overflow)?;
    let unprot_info_end = unprot_start.checked_add(4).ok_or(overflow)?;
    if len < unprot_info_end {
        return Err(ImageError::Truncated {
            len,
            needed: unprot_info_end,
        });
    }
    src.read(unprot_start, &mut info)?;
    let unprot_size = u16::from_le_bytes([info[2], info[3]]);
    if u16::from_le_bytes([info[0], info[1]]) != TLV_INFO_MAGIC || unprot_size < 4 {
        return Err(ImageError::TlvMalformed);
    }
    let stated = unprot_start
        .checked_add(u32::from(unprot_size))
        .ok_or(overflow)?;
    if len < stated {
        return Err(ImageError::Truncated {
            len,
            needed: stated,
        });
    }
    if len > stated {
        return Err(ImageError::Trailing { len, stated });
    }

    let (mut counter, mut hardware) = (None, None);
    walk(
        src,
        prot_start,
        u32::from(prot_size),
        |kind, v| match kind {
            tlv::SEC_CNT => {
                let c = u32::from_le_bytes(v.try_into().map_err(|_| ImageError::TlvMalformed)?);
                set_once(&mut counter, TlvKind::SecurityCounter, c)
            }
            tlv::HW_ID => {
                let hw = HardwareId::from_bytes(v).ok_or(ImageError::TlvMalformed)?;
                set_once(&mut hardware, TlvKind::HardwareId, hw)
            }
            other => Err(ImageError::UnknownTlv { kind: other }),
        },
    )?;
    let (mut keyhash, mut digest, mut signature) = (None, None, None);
    walk(src, unprot_start, u32::from(unprot_size), |kind, v| {
        let malformed = |_| ImageError::TlvMalformed;
        match kind {
            tlv::KEYHASH => set_once(
                &mut keyhash,
                TlvKind::KeyHash,
                <[u8; 32]>::try_from(v).map_err(malformed)?,
            ),
            tlv::SHA256 => set_once(
                &mut digest,
                TlvKind::Sha256,
                <[u8; 32]>::try_from(v).map_err(malformed)?,
            ),
            tlv::ED25519 => set_once(
                &mut signature,
                TlvKind::Ed25519,
                <[u8; 64]>::try_from(v).map_err(malformed)?,
            ),
            other => Err(ImageError::UnknownTlv { kind: other }),
        }
    })?;
    Ok(Parsed {
        info: ImageInfo {
            version,
            security_counter: counter.ok_or(ImageError::MissingTlv(TlvKind::SecurityCounter))?,
            hardware: hardware.ok_or(ImageError::MissingTlv(TlvKind::HardwareId))?,
            body_len,
            total_len: len,
            digest: digest.ok_or(ImageError::MissingTlv(TlvKind::Sha256))?,
            key_hash: keyhash.ok_or(ImageError::MissingTlv(TlvKind::KeyHash))?,
        },
        signature: signature.ok_or(ImageError::MissingTlv(TlvKind::Ed25519))?,
        hashed_len: unprot_start,
    })
}

/// The length an image states through its header and TLV info headers (without
/// checking anything else): how many bytes of a slot to verify.
pub fn stated_len<S: ImageSource + ?Sized>(src: &S) -> Result<u32, ImageError> {
    let mut h = [0u8; HEADER_LEN];
    src.read(0, &mut h)?;
    let magic = u32_at(&h, 0).ok_or(ImageError::BadHeader)?;
    if magic != IMAGE_MAGIC {
        return Err(ImageError::BadMagic { found: magic });
    }
    let prot_size = u16_at(&h, 10).ok_or(ImageError::BadHeader)?;
    let body_len = u32_at(&h, 12).ok_or(ImageError::BadHeader)?;
    let unprot_start = (HEADER_LEN as u32)
        .checked_add(body_len)
        .and_then(|p| p.checked_add(u32::from(prot_size)))
        .ok_or(ImageError::BadHeader)?;
    let mut info = [0u8; 4];
    src.read(unprot_start, &mut info)?;
    unprot_start
        .checked_add(u32::from(u16::from_le_bytes([info[2], info[3]])))
        .ok_or(ImageError::BadHeader)
}

/// SHA-256 of the first `len` bytes of `src`.
pub fn digest<S: ImageSource + ?Sized>(src: &S, len: u32) -> Result<[u8; 32], ImageError> {
    let mut hasher = Sha256::new();
    let mut block = [0u8; 256];
    let mut at = 0u32;
    while at < len {
        let n = len.saturating_sub(at).min(block.len() as u32);
        let chunk = block.get_mut(..n as usize).ok_or(ImageError::Storage)?;
        src.read(at, chunk)?;
        hasher.update(&*chunk);
        at = at.saturating_add(n);
    }
    Ok(hasher.finalize().into())
}

/// What the implant requires of an image besides a good hash and signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The implant's hardware.
    pub hardware: HardwareId,
    /// The lowest security counter accepted (the implant's stored counter).
    pub min_counter: u32,
    /// The oldest version accepted (the running one), if any.
    pub min_version: Option<Version>,
}

/// Parses and verifies an image: the digest over header, body and protected TLVs, a
/// trusted key that is not revoked, the strict Ed25519 signature over the digest, the
/// hardware, the security counter and the version, in that order.
pub fn verify<S: ImageSource + ?Sized>(
    src: &S,
    trust: &TrustList,
    policy: &Policy,
) -> Result<ImageInfo, ImageError> {
    let parsed = parse(src)?;
    let info = parsed.info;
    if digest(src, parsed.hashed_len)? != info.digest {
        return Err(ImageError::HashMismatch);
    }
    let key = trust.find(&info.key_hash).ok_or(ImageError::UnknownKey)?;
    if key.revoked {
        return Err(ImageError::RevokedKey);
    }
    verify_signature(&key.key, &info.digest, &parsed.signature)
        .map_err(|BadSignature| ImageError::BadSignature)?;
    if info.hardware != policy.hardware {
        return Err(ImageError::WrongHardware {
            image: info.hardware,
            ours: policy.hardware,
        });
    }
    if info.security_counter < policy.min_counter {
        return Err(ImageError::Rollback {
            image: info.security_counter,
            stored: policy.min_counter,
        });
    }
    if let Some(running) = policy.min_version {
        if info.version < running {
            return Err(ImageError::Downgrade {
                image: info.version,
                running,
            });
        }
    }
    Ok(info)
}

/// The one Ed25519 verification of the crate: `verify_strict` (canonical `S`, no
/// small-order key or `R`), so a signature has one valid encoding (FWU-003).
pub fn verify_signature(
    key: &[u8; 32],
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), BadSignature> {
    let key = VerifyingKey::from_bytes(key).map_err(|_| BadSignature)?;
    key.verify_strict(message, &Signature::from_bytes(signature))
        .map_err(|_| BadSignature)
}

/// A signature that does not verify (or a key that is not a curve point).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSignature;

/// What the signer puts in an image besides its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifest {
    /// The version.
    pub version: Version,
    /// The security counter.
    pub security_counter: u32,
    /// The hardware.
    pub hardware: HardwareId,
}

/// Why an image could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignError {
    /// The output buffer is too small; it needs this many bytes.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// The body is longer than a `u32` states.
    TooLarge,
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: {needed} bytes needed")
            }
            SignError::TooLarge => f.write_str("the body is too large for an image"),
        }
    }
}

/// The length of the signed image of a body of `body_len` bytes.
pub fn signed_len(body_len: usize, manifest: &Manifest) -> Option<usize> {
    HEADER_LEN
        .checked_add(body_len)?
        .checked_add(protected_len(manifest))?
        .checked_add(UNPROTECTED_LEN)
}

fn protected_len(manifest: &Manifest) -> usize {
    4usize
        .saturating_add(4 + 4)
        .saturating_add(4)
        .saturating_add(manifest.hardware.as_bytes().len())
}

/// Writes into `out` the signed image of `body` and returns its length.
pub fn sign(
    body: &[u8],
    manifest: &Manifest,
    key: &SigningKey,
    out: &mut [u8],
) -> Result<usize, SignError> {
    let needed = signed_len(body.len(), manifest).ok_or(SignError::TooLarge)?;
    let body_len = u32::try_from(body.len()).map_err(|_| SignError::TooLarge)?;
    if u32::try_from(needed).is_err() {
        return Err(SignError::TooLarge);
    }
    let out = out
        .get_mut(..needed)
        .ok_or(SignError::BufferTooSmall { needed })?;
    let prot = protected_len(manifest);
    let prot16 = u16::try_from(prot).map_err(|_| SignError::TooLarge)?;
    let mut w = Writer { out, at: 0 };
    w.put(&IMAGE_MAGIC.to_le_bytes());
    w.put(&0u32.to_le_bytes());
    w.put(&(HEADER_LEN as u16).to_le_bytes());
    w.put(&prot16.to_le_bytes());
    w.put(&body_len.to_le_bytes());
    w.put(&0u32.to_le_bytes());
    w.put(&manifest.version.to_bytes());
    w.put(&0u32.to_le_bytes());
    w.put(body);
    w.put(&TLV_PROT_INFO_MAGIC.to_le_bytes());
    w.put(&prot16.to_le_bytes());
    w.tlv(tlv::SEC_CNT, &manifest.security_counter.to_le_bytes());
    w.tlv(tlv::HW_ID, manifest.hardware.as_bytes());
    let hashed = w.at;
    let digest: [u8; 32] = Sha256::digest(w.out.get(..hashed).unwrap_or_default()).into();
    let signature = key.sign(&digest).to_bytes();
    w.put(&TLV_INFO_MAGIC.to_le_bytes());
    w.put(&(UNPROTECTED_LEN as u16).to_le_bytes());
    w.tlv(tlv::KEYHASH, &key_hash(&key.verifying_key().to_bytes()));
    w.tlv(tlv::SHA256, &digest);
    w.tlv(tlv::ED25519, &signature);
    Ok(needed)
}

/// Writes into a buffer sized beforehand: a write past its end is dropped (and the
/// lengths computed by [`signed_len`] make that impossible).
struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, b: &[u8]) {
        let end = self.at.saturating_add(b.len());
        if let Some(dst) = self.out.get_mut(self.at..end) {
            dst.copy_from_slice(b);
        }
        self.at = end;
    }

    fn tlv(&mut self, kind: u16, value: &[u8]) {
        self.put(&kind.to_le_bytes());
        self.put(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_le_bytes());
        self.put(value);
    }
}
