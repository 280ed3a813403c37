//! Firmware update: the virtual implant's flash in its state directory, and the
//! programmer's side of the transfer over an established [`Client`]
//! (docs/firmware-update.md, LINK-029).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use thecal_link::{Body, Reply, UpdateReply, UpdateRequest, message::UPDATE_CHUNK_MAX};
use thecal_update::storage::{Region, Slot, Storage, StorageError};
use thecal_update::updater::{REFERENCE_SLOT_SIZE, provision};
use thecal_update::{HardwareId, ImageInfo, TrustList, UpdateStatus, Updater};

use crate::bearer::{Client, Fail};

/// The update storage of a virtual implant: two slot files and two boot-record files in
/// its state directory, written in place (a positioned write and a data sync per write).
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
}

impl FileStorage {
    /// The storage in `dir`.
    pub fn new(dir: &Path) -> Self {
        FileStorage {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, region: Region) -> Result<PathBuf, StorageError> {
        let name = match region {
            Region::Slot(Slot::A) => "firmware-slot-a.img",
            Region::Slot(Slot::B) => "firmware-slot-b.img",
            Region::Record(0) => "firmware-boot-0.bin",
            Region::Record(1) => "firmware-boot-1.bin",
            Region::Transfer(0) => "firmware-transfer-0.bin",
            Region::Transfer(1) => "firmware-transfer-1.bin",
            Region::Record(_) | Region::Transfer(_) => return Err(StorageError),
        };
        Ok(self.dir.join(name))
    }

    /// Whether a boot record was ever written (the firmware was provisioned).
    pub fn provisioned(&self) -> bool {
        [0u8, 1]
            .iter()
            .any(|c| self.path(Region::Record(*c)).is_ok_and(|p| p.exists()))
    }
}

impl Storage for FileStorage {
    fn slot_size(&self) -> u32 {
        REFERENCE_SLOT_SIZE
    }

    fn read(&self, region: Region, offset: u32, buf: &mut [u8]) -> Result<(), StorageError> {
        // Bytes never written read as erased flash.
        buf.fill(0xff);
        let Ok(f) = File::open(self.path(region)?) else {
            return Ok(());
        };
        let mut at = 0usize;
        while at < buf.len() {
            match f.read_at(&mut buf[at..], u64::from(offset) + at as u64) {
                Ok(0) => break,
                Ok(n) => at += n,
                Err(_) => return Err(StorageError),
            }
        }
        Ok(())
    }

    fn write(&mut self, region: Region, offset: u32, data: &[u8]) -> Result<(), StorageError> {
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .mode(0o600)
            .open(self.path(region)?)
            .map_err(|_| StorageError)?;
        f.write_all_at(data, u64::from(offset))
            .map_err(|_| StorageError)?;
        f.sync_data().map_err(|_| StorageError)
    }
}

/// What a virtual implant is made with the first time: its factory image and the
/// maker's key it trusts.
#[derive(Debug, Clone)]
pub struct FirmwareSetup {
    /// The signed image it runs from the factory.
    pub image: PathBuf,
    /// The maker's Ed25519 public key.
    pub trusted_key: [u8; 32],
}

/// Opens the virtual implant's updater: provisions it from `setup` the first time (the
/// factory image into slot A, verified with the trusted key), then boots as the
/// bootloader would. `None` if it was never provisioned and there is no setup.
///
/// # Errors
/// The factory image does not verify, or the storage fails.
pub fn open_updater(
    dir: &Path,
    hardware: &str,
    setup: Option<&FirmwareSetup>,
) -> Result<Option<(Updater, FileStorage)>, String> {
    let mut storage = FileStorage::new(dir);
    let hw = HardwareId::new(hardware)
        .ok_or_else(|| format!("hardware {hardware}: not a firmware hardware id"))?;
    if !storage.provisioned() {
        let Some(setup) = setup else {
            return Ok(None);
        };
        let image = std::fs::read(&setup.image)
            .map_err(|e| format!("--firmware {}: cannot read: {e}", setup.image.display()))?;
        let trust = TrustList::new(&[setup.trusted_key])
            .ok_or("--firmware-key: not a valid Ed25519 public key")?;
        let policy = thecal_update::image::Policy {
            hardware: hw,
            min_counter: 0,
            min_version: None,
        };
        let info = thecal_update::image::verify(&image[..], &trust, &policy)
            .map_err(|e| format!("--firmware {}: {e}", setup.image.display()))?;
        storage
            .write(Region::Slot(Slot::A), 0, &image)
            .map_err(|_| "cannot write the factory image")?;
        provision(&mut storage, Slot::A, trust, info.security_counter)
            .map_err(|_| "cannot write the boot record")?;
    }
    let updater = Updater::boot(&mut storage, hw)
        .map_err(|e| format!("the implant's firmware does not boot: {e:?}"))?;
    Ok(Some((updater, storage)))
}

fn update(client: &mut Client, r: UpdateRequest) -> Result<UpdateReply, Fail> {
    match client.request(Body::Update(r))? {
        Reply::Update(u) => Ok(u),
        other => Err(Fail::Refused(Box::new(other))),
    }
}

/// An update step the implant refused, in words.
pub fn refused(reply: &UpdateReply) -> Fail {
    Fail::Runtime(match reply {
        UpdateReply::Refused(r) => format!("the implant refused: {r}"),
        UpdateReply::Unsupported => {
            "this implant's firmware takes no update over the link".to_string()
        }
        other => format!("unexpected answer: {other:?}"),
    })
}

/// The implant's update status.
pub fn status(client: &mut Client) -> Result<UpdateStatus, Fail> {
    match update(client, UpdateRequest::Status)? {
        UpdateReply::Status(s) => Ok(s),
        other => Err(refused(&other)),
    }
}

/// Sends `image` (labelled `image_id`), resuming where the implant's transfer of the
/// same image stands, calling `progress(have, total)` after each chunk; then has the
/// implant verify it.
pub fn send(
    client: &mut Client,
    image: &[u8],
    image_id: [u8; 32],
    mut progress: impl FnMut(u32, u32),
) -> Result<ImageInfo, Fail> {
    let total = u32::try_from(image.len()).map_err(|_| Fail::Runtime("image too large".into()))?;
    let st = status(client)?;
    let mut at = match st.transfer {
        Some(t) if t.image_id == image_id && t.total == total => t.have as usize,
        _ => match update(client, UpdateRequest::Begin { total, image_id })? {
            UpdateReply::Accepted => 0,
            other => return Err(refused(&other)),
        },
    };
    progress(at as u32, total);
    while at < image.len() {
        let end = (at + UPDATE_CHUNK_MAX).min(image.len());
        let data = heapless::Vec::from_slice(&image[at..end])
            .map_err(|_| Fail::Runtime("chunk too long".into()))?;
        match update(
            client,
            UpdateRequest::Chunk {
                offset: at as u32,
                data,
            },
        )? {
            UpdateReply::Have { next } => at = next as usize,
            // The answer to a chunk was lost and the chunk resent: continue where the
            // implant is.
            UpdateReply::Refused(thecal_update::Refusal::Replay { expected, .. }) => {
                at = expected as usize;
            }
            other => return Err(refused(&other)),
        }
        progress(at as u32, total);
    }
    match update(client, UpdateRequest::Verify)? {
        UpdateReply::Verified(info) => Ok(info),
        other => Err(refused(&other)),
    }
}

/// Marks the verified image for a trial: the implant restarts into it.
pub fn mark_for_trial(client: &mut Client) -> Result<(), Fail> {
    match update(client, UpdateRequest::MarkForTrial)? {
        UpdateReply::Accepted => Ok(()),
        other => Err(refused(&other)),
    }
}

/// A signed statement about the implant's firmware-signing keys, as `thecal firmware
/// rotate` and `thecal firmware revoke` write it (LINK-034, LINK-035).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatement {
    /// `new` replaces `old`: signed by `old`, which the implant then revokes.
    Rotation {
        /// The key that signs the statement and is revoked.
        old: [u8; 32],
        /// The key added.
        new: [u8; 32],
        /// `old`'s signature over the rotation context, `old` and `new`.
        signature: [u8; 64],
    },
    /// `key` is revoked: signed by `signer`, a trusted key (itself or another).
    Revocation {
        /// The key revoked.
        key: [u8; 32],
        /// The key that signs the statement.
        signer: [u8; 32],
        /// `signer`'s signature over the revocation context and `key`.
        signature: [u8; 64],
    },
}

/// A key statement file (JSON).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StatementFile {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    old: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    new: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signer: Option<String>,
    signature: String,
}

const ROTATION_KIND: &str = "firmware-key-rotation";
const REVOCATION_KIND: &str = "firmware-key-revocation";

fn unhex64(what: &str, text: &str) -> Result<[u8; 64], String> {
    let t = text.trim();
    if t.len() != 128 || !t.is_ascii() {
        return Err(format!(
            "{what}: expected 128 hex digits (a 64-byte Ed25519 signature), found {} characters",
            t.len()
        ));
    }
    let a = crate::keyfile::unhex32(what, &t[..64])?;
    let b = crate::keyfile::unhex32(what, &t[64..])?;
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(&a);
    out[32..].copy_from_slice(&b);
    Ok(out)
}

impl KeyStatement {
    /// The statement as its file's text.
    pub fn to_text(&self) -> String {
        use crate::keyfile::hex;
        let file = match self {
            KeyStatement::Rotation {
                old,
                new,
                signature,
            } => StatementFile {
                kind: ROTATION_KIND.into(),
                old: Some(hex(old)),
                new: Some(hex(new)),
                key: None,
                signer: None,
                signature: hex(signature),
            },
            KeyStatement::Revocation {
                key,
                signer,
                signature,
            } => StatementFile {
                kind: REVOCATION_KIND.into(),
                old: None,
                new: None,
                key: Some(hex(key)),
                signer: Some(hex(signer)),
                signature: hex(signature),
            },
        };
        let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Reads a statement file's text; the error names what is wrong.
    pub fn parse(text: &str) -> Result<KeyStatement, String> {
        let file: StatementFile = serde_json::from_str(text).map_err(|e| {
            format!(
                "not a key statement ({e}); make one with `thecal firmware rotate` or \
                 `thecal firmware revoke`"
            )
        })?;
        let need = |name: &str, v: &Option<String>| -> Result<[u8; 32], String> {
            let t = v
                .as_deref()
                .ok_or_else(|| format!("{}: the field '{name}' is missing", file.kind))?;
            crate::keyfile::unhex32(name, t)
        };
        let signature = unhex64("signature", &file.signature)?;
        match file.kind.as_str() {
            ROTATION_KIND => Ok(KeyStatement::Rotation {
                old: need("old", &file.old)?,
                new: need("new", &file.new)?,
                signature,
            }),
            REVOCATION_KIND => Ok(KeyStatement::Revocation {
                key: need("key", &file.key)?,
                signer: need("signer", &file.signer)?,
                signature,
            }),
            other => Err(format!(
                "kind '{other}' is not a key statement; known: {ROTATION_KIND}, {REVOCATION_KIND}"
            )),
        }
    }

    /// Whether the statement's signature checks against the key it names as its
    /// signer (the implant checks it again against its own trusted keys).
    pub fn signature_checks(&self) -> bool {
        use thecal_update::keys::{revocation_signed_by, rotation_signed_by};
        match self {
            KeyStatement::Rotation {
                old,
                new,
                signature,
            } => rotation_signed_by(old, new, signature),
            KeyStatement::Revocation {
                key,
                signer,
                signature,
            } => revocation_signed_by(signer, key, signature),
        }
    }

    /// The update request that sends it.
    pub fn request(&self) -> UpdateRequest {
        use thecal_link::message::KeySignature;
        match *self {
            KeyStatement::Rotation { new, signature, .. } => UpdateRequest::RotateKey {
                new,
                signature: KeySignature::from_bytes(&signature),
            },
            KeyStatement::Revocation { key, signature, .. } => UpdateRequest::RevokeKey {
                key,
                signature: KeySignature::from_bytes(&signature),
            },
        }
    }
}

/// The implant's trusted firmware-signing keys (revoked ones included).
pub fn keys(client: &mut Client) -> Result<TrustList, Fail> {
    match update(client, UpdateRequest::Keys)? {
        UpdateReply::Keys(k) => Ok(k),
        other => Err(refused(&other)),
    }
}

/// Sends a key statement; the implant's refusal, in words, as the error.
pub fn send_statement(client: &mut Client, statement: &KeyStatement) -> Result<(), Fail> {
    match update(client, statement.request())? {
        UpdateReply::Accepted => Ok(()),
        other => Err(refused(&other)),
    }
}
