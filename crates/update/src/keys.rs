//! The keys the implant trusts to sign firmware, and how that list changes (FWU-009).
//!
//! **Owns:** the bounded trusted-keys list, the statements that rotate a key (a new key
//! signed by the old one, which is then revoked) and revoke a key, and their checks.
//!
//! **Must never:** trust a key no trusted key signed for, trust a revoked key again,
//! or leave the implant without a key it trusts.
//!
//! A revoked key stays listed, so a replayed rotation can never bring it back; the list
//! holds [`KEYS_MAX`] keys over the implant's life.

use core::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::image::verify_signature;

/// The most keys the list holds, revoked ones included.
pub const KEYS_MAX: usize = 8;

/// What a rotation statement signs: this context, the old key, the new key.
pub const ROTATE_CONTEXT: &[u8; 28] = b"thecal-update/rotate-key/v1\0";
/// What a revocation statement signs: this context, the revoked key.
pub const REVOKE_CONTEXT: &[u8; 28] = b"thecal-update/revoke-key/v1\0";

/// The SHA-256 of a public key (MCUboot's `KEYHASH`).
pub fn key_hash(key: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// One trusted key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    /// The Ed25519 public key.
    pub key: [u8; 32],
    /// Revoked: images it signed are refused.
    pub revoked: bool,
}

/// Why a key statement is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyRefusal {
    /// No trusted, unrevoked key signed the statement.
    NotSigned,
    /// The new key is not a valid Ed25519 key (or a weak, small-order one).
    InvalidKey,
    /// The new key is already trusted.
    AlreadyTrusted,
    /// The key was revoked: it can never be trusted again.
    WasRevoked,
    /// The list is full.
    Full,
    /// The key to revoke is not listed.
    UnknownKey,
    /// The key is already revoked.
    AlreadyRevoked,
    /// Revoking it would leave no trusted key.
    LastKey,
}

impl KeyRefusal {
    /// A stable code for logs and the link.
    pub const fn code(&self) -> u8 {
        match self {
            KeyRefusal::NotSigned => 60,
            KeyRefusal::InvalidKey => 61,
            KeyRefusal::AlreadyTrusted => 62,
            KeyRefusal::WasRevoked => 63,
            KeyRefusal::Full => 64,
            KeyRefusal::UnknownKey => 65,
            KeyRefusal::AlreadyRevoked => 66,
            KeyRefusal::LastKey => 67,
        }
    }
}

impl fmt::Display for KeyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyRefusal::NotSigned => "the statement is not signed by a trusted key",
            KeyRefusal::InvalidKey => "not a valid Ed25519 public key",
            KeyRefusal::AlreadyTrusted => "the key is already trusted",
            KeyRefusal::WasRevoked => "the key was revoked and can never be trusted again",
            KeyRefusal::Full => "the trusted-keys list is full",
            KeyRefusal::UnknownKey => "the key is not in the trusted-keys list",
            KeyRefusal::AlreadyRevoked => "the key is already revoked",
            KeyRefusal::LastKey => "revoking it would leave no trusted key",
        })
    }
}

/// The trusted keys, revoked ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TrustList {
    keys: heapless::Vec<TrustedKey, KEYS_MAX>,
}

fn rotation_message(old: &[u8; 32], new: &[u8; 32]) -> [u8; 92] {
    let mut m = [0u8; 92];
    for (dst, src) in m
        .iter_mut()
        .zip(ROTATE_CONTEXT.iter().chain(old).chain(new))
    {
        *dst = *src;
    }
    m
}

fn revocation_message(subject: &[u8; 32]) -> [u8; 60] {
    let mut m = [0u8; 60];
    for (dst, src) in m.iter_mut().zip(REVOKE_CONTEXT.iter().chain(subject)) {
        *dst = *src;
    }
    m
}

/// Whether `signature` is `old`'s rotation statement to `new` (strict verification), as
/// a tool checks a statement before it is sent; the implant checks it against its own
/// trusted keys ([`TrustList::rotated`]).
pub fn rotation_signed_by(old: &[u8; 32], new: &[u8; 32], signature: &[u8; 64]) -> bool {
    verify_signature(old, &rotation_message(old, new), signature).is_ok()
}

/// Whether `signature` is `signer`'s revocation statement of `subject` (strict).
pub fn revocation_signed_by(signer: &[u8; 32], subject: &[u8; 32], signature: &[u8; 64]) -> bool {
    verify_signature(signer, &revocation_message(subject), signature).is_ok()
}

/// The rotation statement: `old` signs that `new` replaces it.
pub fn sign_rotation(old: &SigningKey, new: &[u8; 32]) -> [u8; 64] {
    old.sign(&rotation_message(&old.verifying_key().to_bytes(), new))
        .to_bytes()
}

/// The revocation statement: `signer` signs that `subject` is revoked.
pub fn sign_revocation(signer: &SigningKey, subject: &[u8; 32]) -> [u8; 64] {
    signer.sign(&revocation_message(subject)).to_bytes()
}

impl TrustList {
    /// A list of the given keys (factory provisioning); `None` if more than
    /// [`KEYS_MAX`], none, or one is invalid.
    pub fn new(keys: &[[u8; 32]]) -> Option<Self> {
        let mut list = TrustList::default();
        for k in keys {
            if !valid_key(k) {
                return None;
            }
            list.keys
                .push(TrustedKey {
                    key: *k,
                    revoked: false,
                })
                .ok()?;
        }
        (!list.keys.is_empty()).then_some(list)
    }

    /// A list of stored entries (the boot record's decoder).
    pub(crate) fn from_entries(keys: heapless::Vec<TrustedKey, KEYS_MAX>) -> Self {
        TrustList { keys }
    }

    /// The keys, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &TrustedKey> {
        self.keys.iter()
    }

    /// The key with this hash.
    pub fn find(&self, hash: &[u8; 32]) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| key_hash(&k.key) == *hash)
    }

    fn active(&self) -> impl Iterator<Item = &TrustedKey> {
        self.keys.iter().filter(|k| !k.revoked)
    }

    /// The list after a rotation to `new`, signed by the old key (which is revoked).
    pub fn rotated(&self, new: &[u8; 32], signature: &[u8; 64]) -> Result<Self, KeyRefusal> {
        let old = self
            .active()
            .find(|k| verify_signature(&k.key, &rotation_message(&k.key, new), signature).is_ok())
            .map(|k| k.key)
            .ok_or(KeyRefusal::NotSigned)?;
        if !valid_key(new) {
            return Err(KeyRefusal::InvalidKey);
        }
        match self.keys.iter().find(|k| k.key == *new) {
            Some(k) if k.revoked => return Err(KeyRefusal::WasRevoked),
            Some(_) => return Err(KeyRefusal::AlreadyTrusted),
            None => {}
        }
        let mut next = self.clone();
        next.keys
            .push(TrustedKey {
                key: *new,
                revoked: false,
            })
            .map_err(|_| KeyRefusal::Full)?;
        for k in next.keys.iter_mut().filter(|k| k.key == old) {
            k.revoked = true;
        }
        Ok(next)
    }

    /// The list after revoking `subject`, signed by a trusted key (itself or another).
    pub fn revoked(&self, subject: &[u8; 32], signature: &[u8; 64]) -> Result<Self, KeyRefusal> {
        let message = revocation_message(subject);
        if !self
            .active()
            .any(|k| verify_signature(&k.key, &message, signature).is_ok())
        {
            return Err(KeyRefusal::NotSigned);
        }
        let mut next = self.clone();
        let entry = next
            .keys
            .iter_mut()
            .find(|k| k.key == *subject)
            .ok_or(KeyRefusal::UnknownKey)?;
        if entry.revoked {
            return Err(KeyRefusal::AlreadyRevoked);
        }
        entry.revoked = true;
        if next.active().next().is_none() {
            return Err(KeyRefusal::LastKey);
        }
        Ok(next)
    }
}

/// Whether `key` is a valid Ed25519 public key that is not of small order.
pub fn valid_key(key: &[u8; 32]) -> bool {
    VerifyingKey::from_bytes(key).is_ok_and(|k| !k.is_weak())
}
