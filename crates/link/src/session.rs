//! Sans-IO Noise sessions: the handshake as states consumed by value, then a transport.
//!
//! # Suite
//!
//! One fixed suite, [`PROTOCOL_NAME`] = `Noise_IK_25519_ChaChaPoly_BLAKE2s`, no
//! negotiation. The prologue ([`PROLOGUE`]) binds the thecal link version and the protocol
//! name, so a peer speaking anything else fails the handshake.
//!
//! * **IK**: every device has its own static X25519 key (no shared secrets). The
//!   programmer or remote (initiator) knows the pump's static key from enrolment; it sends
//!   its own static key encrypted in message 1, so the pump (responder) learns *which*
//!   enrolled device is calling (and thus its role) without a cleartext device id and
//!   without trial decryption against every enrolled key, and a passive listener learns
//!   neither identity. Two messages, one round trip: the least radio time.
//! * **25519 / ChaChaPoly / BLAKE2s**: constant-time in portable software on a Cortex-M4
//!   without AES hardware; BLAKE2s is 32-bit native (and already in the pump's log chain).
//!
//! # Flow
//!
//! ```text
//! Initiator::new ──write_hello──▶ AwaitingReply ──read_reply──▶ Session
//! Responder::new ──read_hello───▶ HelloReceived ──write_reply──▶ Session
//!                                 (check initiator_static() is enrolled first)
//! ```
//!
//! Every step consumes its state; on an error the state is gone and the handshake starts
//! again from `new` with fresh entropy. Handshake messages carry **no payload**: the API
//! cannot write one, and a received handshake message with a payload is refused
//! ([`LinkError::PayloadInHandshake`]) — message 1 of any Noise pattern can be replayed,
//! so a command must never ride in it. Commands travel only in [`Session`] transport
//! messages.
//!
//! # Transport
//!
//! Nonces are explicit counters kept here (over snow's stateless transport):
//! * a message is sent with the next send nonce, which advances only after a successful
//!   encryption; at [`NONCE_LIMIT`] the session refuses ([`LinkError::NonceExhausted`])
//!   rather than wrap — a fresh handshake is needed;
//! * a received message is decrypted with the next receive nonce, which advances only
//!   after it authenticates: a forged, corrupted or replayed frame is rejected
//!   ([`LinkError::Decrypt`]) and leaves the session exactly as it was.
//!
//! # Entropy
//!
//! The crate has no RNG of its own (no `getrandom` on the implant): each handshake side
//! takes 32 bytes of fresh [`Entropy`] from the caller (the implant's TRNG, the host OS),
//! used once as the ephemeral private key.

use alloc::boxed::Box;
use core::fmt;

use blake2::digest::{KeyInit, Mac as _};
use snow::params::{DHChoice, NoiseParams};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use snow::{HandshakeState, StatelessTransportState};

use crate::frame::{self, Frame, FrameError, HEADER_LEN, Kind, MAX_PAYLOAD};

/// The one Noise protocol thecal speaks.
pub const PROTOCOL_NAME: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";

/// The pattern of an enrolment handshake: IK with a pre-shared key from the proximity
/// channel (a programmer at the bedside) or from a clinician session (a patient remote),
/// mixed in at the end of message 1, so the implant checks it before it replies.
pub const ENROLMENT_PROTOCOL_NAME: &str = "Noise_IKpsk1_25519_ChaChaPoly_BLAKE2s";

/// The thecal link version bound into the prologue. It names the message vocabulary:
/// version 2 added the fluid path read (`LinkCommand::ReadFluidPath`), version 3 the
/// firmware update (`Body::Update`, LINK-029), version 4 the firmware-signing keys'
/// rotation and revocation (`UpdateRequest::RotateKey`, `RevokeKey`, `Keys`, LINK-034);
/// a programmer and
/// an implant of different versions fail the handshake instead of misreading a message.
/// (The key-derivation labels keep their `thecal-link/1` text: they separate uses of
/// one hash, they do not name the vocabulary, and changing them would re-key every
/// enrolled device.)
pub const LINK_VERSION: &str = "thecal-link/4";

/// The Noise prologue: the link version and the protocol name.
pub const PROLOGUE: &[u8] = b"thecal-link/4;Noise_IK_25519_ChaChaPoly_BLAKE2s";

/// Length of an X25519 key.
pub const KEY_LEN: usize = 32;

/// Length of a ChaCha20-Poly1305 tag.
pub const TAG_LEN: usize = 16;

/// Length of handshake message 1 (no payload): `e`, encrypted `s` with its tag, the tag of
/// the empty payload.
pub const HANDSHAKE_INIT_LEN: usize = KEY_LEN + KEY_LEN + TAG_LEN + TAG_LEN;

/// Length of the cleartext hello header: the key id the initiator claims (4 bytes, little
/// endian; 0 for an enrolment) and its handshake counter (8 bytes, little endian).
pub const HELLO_HEADER_LEN: usize = 4 + 8;

/// Length of the pre-authentication tag that ends a hello (keyed BLAKE2s, 128 bits).
pub const PREAUTH_TAG_LEN: usize = 16;

/// Length of a hello frame's payload: header, Noise message 1, pre-authentication tag.
pub const HELLO_LEN: usize = HELLO_HEADER_LEN + HANDSHAKE_INIT_LEN + PREAUTH_TAG_LEN;

/// Length of handshake message 2 (no payload): `e`, the tag of the empty payload.
pub const HANDSHAKE_REPLY_LEN: usize = KEY_LEN + TAG_LEN;

/// The largest plaintext of one transport message.
pub const MAX_PLAINTEXT: usize = MAX_PAYLOAD - TAG_LEN;

/// The first nonce that is never used (Noise reserves 2^64 − 1): reaching it ends the
/// session.
pub const NONCE_LIMIT: u64 = u64::MAX;

/// Why a link step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// The bytes are not a frame.
    Frame(FrameError),
    /// A frame of the wrong kind for this step.
    UnexpectedKind {
        /// What this step accepts.
        expected: Kind,
        /// What arrived.
        got: Kind,
    },
    /// A handshake message carried a payload: refused (commands only after the handshake).
    PayloadInHandshake,
    /// The handshake message is malformed or did not authenticate.
    Handshake,
    /// A transport message did not authenticate (the session is unchanged).
    Decrypt,
    /// The nonce would reach [`NONCE_LIMIT`]: a new handshake is needed.
    NonceExhausted,
    /// A plaintext longer than one message may carry.
    TooLong {
        /// The largest plaintext allowed.
        max: usize,
    },
    /// The output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// A key or the entropy was unusable (e.g. the Noise library refused the set-up).
    Setup,
    /// The implant's receiver was not listening (backing off, or asleep after its daily
    /// energy budget): the frame was never received.
    NotListening,
    /// The session was idle too long and is closed: a new handshake is needed.
    SessionExpired,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Frame(e) => write!(f, "bad frame: {e}"),
            LinkError::UnexpectedKind { expected, got } => {
                write!(f, "expected a {expected} frame, got a {got} frame")
            }
            LinkError::PayloadInHandshake => f.write_str(
                "a handshake message carried a payload (commands only after the handshake)",
            ),
            LinkError::Handshake => f.write_str("handshake failed"),
            LinkError::Decrypt => f.write_str("message did not authenticate"),
            LinkError::NonceExhausted => {
                f.write_str("session nonces exhausted; a new handshake is needed")
            }
            LinkError::TooLong { max } => write!(f, "message too long (at most {max} bytes)"),
            LinkError::BufferTooSmall { needed } => {
                write!(f, "output buffer too small ({needed} bytes needed)")
            }
            LinkError::Setup => f.write_str("session set-up failed"),
            LinkError::SessionExpired => {
                f.write_str("the session was idle too long and is closed; connect again")
            }
            LinkError::NotListening => f.write_str(
                "the pump's radio is not listening (backing off or asleep); \
                 wake it with the programmer wand",
            ),
        }
    }
}

impl core::error::Error for LinkError {}

impl From<FrameError> for LinkError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::BufferTooSmall { needed } => LinkError::BufferTooSmall { needed },
            e => LinkError::Frame(e),
        }
    }
}

/// An X25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PublicKey(pub [u8; KEY_LEN]);

/// A device's static X25519 key pair.
#[derive(Clone)]
pub struct StaticKeypair {
    secret: [u8; KEY_LEN],
    public: PublicKey,
}

impl StaticKeypair {
    /// The key pair for a private key (clamped by X25519 when used).
    pub fn from_secret(secret: [u8; KEY_LEN]) -> Result<Self, LinkError> {
        let mut dh = DefaultResolver
            .resolve_dh(&DHChoice::Curve25519)
            .ok_or(LinkError::Setup)?;
        dh.set(&secret);
        let public = <[u8; KEY_LEN]>::try_from(dh.pubkey()).map_err(|_| LinkError::Setup)?;
        Ok(StaticKeypair {
            secret,
            public: PublicKey(public),
        })
    }

    /// The public key.
    pub const fn public(&self) -> &PublicKey {
        &self.public
    }
}

impl fmt::Debug for StaticKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeypair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// 32 bytes of fresh entropy for one handshake's ephemeral key. Never reuse.
pub struct Entropy([u8; KEY_LEN]);

impl Entropy {
    /// Wraps bytes from a true random source.
    pub const fn new(bytes: [u8; KEY_LEN]) -> Self {
        Entropy(bytes)
    }

    #[cfg(test)]
    pub(crate) const fn bytes(&self) -> [u8; KEY_LEN] {
        self.0
    }
}

impl fmt::Debug for Entropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Entropy(..)")
    }
}

/// snow's pure-Rust primitives, with the caller's entropy as the only randomness.
struct Resolver {
    entropy: Option<[u8; KEY_LEN]>,
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(OneShot(self.entropy)))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        Some(Box::new(Contributory(DefaultResolver.resolve_dh(choice)?)))
    }
    fn resolve_hash(&self, choice: &snow::params::HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &snow::params::CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// X25519 that refuses a shared secret of all zeros: the peer sent a low-order point
/// (RFC 7748 §6.1), which would make the Diffie-Hellman result known to anyone. The
/// handshake fails instead of going on with a secret that is not secret.
pub(crate) struct Contributory(pub(crate) Box<dyn Dh>);

impl Dh for Contributory {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn pub_len(&self) -> usize {
        self.0.pub_len()
    }
    fn priv_len(&self) -> usize {
        self.0.priv_len()
    }
    fn set(&mut self, privkey: &[u8]) {
        self.0.set(privkey);
    }
    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        self.0.generate(rng)
    }
    fn pubkey(&self) -> &[u8] {
        self.0.pubkey()
    }
    fn privkey(&self) -> &[u8] {
        self.0.privkey()
    }
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        self.0.dh(pubkey, out)?;
        // Constant time over the output: OR every byte together.
        if out.iter().fold(0u8, |acc, b| acc | b) == 0 {
            out.fill(0);
            return Err(snow::Error::Dh);
        }
        Ok(())
    }
}

/// Yields the entropy once, for one 32-byte private key; any other request fails.
struct OneShot(Option<[u8; KEY_LEN]>);

impl Random for OneShot {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        let dest = <&mut [u8; KEY_LEN]>::try_from(dest).map_err(|_| snow::Error::Rng)?;
        *dest = self.0.take().ok_or(snow::Error::Rng)?;
        Ok(())
    }
}

/// Everything a Noise handshake state is built from (also used by the conformance tests
/// to replay other patterns and prologues through the same resolver).
pub(crate) struct Setup<'a> {
    pub(crate) protocol: &'a str,
    pub(crate) initiator: bool,
    pub(crate) prologue: &'a [u8],
    pub(crate) local_static: Option<&'a [u8]>,
    pub(crate) remote_static: Option<&'a [u8]>,
    pub(crate) entropy: Option<[u8; KEY_LEN]>,
    pub(crate) psks: &'a [(u8, [u8; 32])],
}

pub(crate) fn build(setup: &Setup<'_>) -> Result<HandshakeState, snow::Error> {
    let params: NoiseParams = setup.protocol.parse()?;
    let resolver = Box::new(Resolver {
        entropy: setup.entropy,
    });
    let mut builder = snow::Builder::with_resolver(params, resolver).prologue(setup.prologue)?;
    if let Some(s) = setup.local_static {
        builder = builder.local_private_key(s)?;
    }
    if let Some(rs) = setup.remote_static {
        builder = builder.remote_public_key(rs)?;
    }
    for (location, psk) in setup.psks {
        builder = builder.psk(*location, psk)?;
    }
    if setup.initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    }
}

/// The prologue of one handshake: [`PROLOGUE`], then the hello header, so the claimed key
/// id and the counter are bound into the handshake hash (a changed header fails it).
fn prologue(header: &HelloHeader) -> [u8; PROLOGUE.len() + HELLO_HEADER_LEN] {
    let mut p = [0u8; PROLOGUE.len() + HELLO_HEADER_LEN];
    let (fixed, tail) = p.split_at_mut(PROLOGUE.len());
    fixed.copy_from_slice(PROLOGUE);
    tail.copy_from_slice(&header.to_bytes());
    p
}

fn ik(
    initiator: bool,
    local: &StaticKeypair,
    remote: Option<&PublicKey>,
    header: &HelloHeader,
    psk: Option<&[u8; KEY_LEN]>,
    entropy: Entropy,
) -> Result<HandshakeState, LinkError> {
    let prologue = prologue(header);
    let psks: &[(u8, [u8; 32])] = match psk {
        Some(k) => &[(1, *k)],
        None => &[],
    };
    build(&Setup {
        protocol: if psk.is_some() {
            ENROLMENT_PROTOCOL_NAME
        } else {
            PROTOCOL_NAME
        },
        initiator,
        prologue: &prologue,
        local_static: Some(&local.secret),
        remote_static: remote.map(|k| &k.0[..]),
        entropy: Some(entropy.0),
        psks,
    })
    .map_err(|_| LinkError::Setup)
}

/// The cleartext front of a hello: who claims to call, and how many handshakes it has
/// made. Read by the implant before any cryptography (an unknown key id, a counter that
/// does not increase and a bad pre-authentication tag cost no Diffie-Hellman).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloHeader {
    /// The key id the initiator claims (0: an enrolment handshake).
    pub key_id: u32,
    /// The initiator's handshake counter: must exceed the last one the implant accepted
    /// from this key id.
    pub counter: u64,
}

impl HelloHeader {
    fn to_bytes(self) -> [u8; HELLO_HEADER_LEN] {
        let mut b = [0u8; HELLO_HEADER_LEN];
        let (id, counter) = b.split_at_mut(4);
        id.copy_from_slice(&self.key_id.to_le_bytes());
        counter.copy_from_slice(&self.counter.to_le_bytes());
        b
    }

    /// Reads the header of a hello frame without any cryptography. Checks the frame, its
    /// kind and its exact length.
    pub fn peek(frame: &[u8]) -> Result<HelloHeader, LinkError> {
        let f = Frame::new_checked(frame)?;
        if f.kind() != Kind::HandshakeInit {
            return Err(LinkError::UnexpectedKind {
                expected: Kind::HandshakeInit,
                got: f.kind(),
            });
        }
        let p = f.payload();
        if p.len() > HELLO_LEN {
            return Err(LinkError::PayloadInHandshake);
        }
        if p.len() < HELLO_LEN {
            return Err(LinkError::Handshake);
        }
        let id = p.first_chunk::<4>().ok_or(LinkError::Handshake)?;
        let counter = p
            .get(4..HELLO_HEADER_LEN)
            .and_then(|c| <[u8; 8]>::try_from(c).ok())
            .ok_or(LinkError::Handshake)?;
        Ok(HelloHeader {
            key_id: u32::from_le_bytes(*id),
            counter: u64::from_le_bytes(counter),
        })
    }
}

/// What an initiator needs besides its keys to say hello: the key id and pre-authentication
/// key it was given at enrolment, and a counter that increases with every handshake (a
/// clock in milliseconds serves, as long as it never goes back). An enrolment hello uses
/// key id 0, the window's pre-shared key as `psk`, and the same key as `preauth`.
#[derive(Clone)]
pub struct HelloAuth {
    /// The cleartext header.
    pub header: HelloHeader,
    /// The key of the pre-authentication tag.
    pub preauth: [u8; KEY_LEN],
    /// The pre-shared key of an enrolment handshake.
    pub psk: Option<[u8; KEY_LEN]>,
}

impl fmt::Debug for HelloAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HelloAuth")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// The pre-authentication tag of a hello: keyed BLAKE2s-128 over the frame header, the
/// hello header and Noise message 1.
pub(crate) fn preauth_tag(
    key: &[u8; KEY_LEN],
    covered: &[u8],
) -> Result<[u8; PREAUTH_TAG_LEN], LinkError> {
    let mut mac = <PreauthMac as KeyInit>::new_from_slice(key).map_err(|_| LinkError::Setup)?;
    mac.update(covered);
    Ok(mac.finalize().into_bytes().into())
}

type PreauthMac = blake2::Blake2sMac<blake2::digest::consts::U16>;

/// Checks a hello frame's pre-authentication tag with `key`: one keyed BLAKE2s over about
/// 120 bytes, against four X25519 operations for the handshake itself. `false` for
/// anything that is not a whole hello.
pub fn verify_preauth(frame: &[u8], key: &[u8; KEY_LEN]) -> bool {
    let covered_len = HEADER_LEN.saturating_add(HELLO_HEADER_LEN + HANDSHAKE_INIT_LEN);
    if frame.len() != HEADER_LEN.saturating_add(HELLO_LEN) {
        return false;
    }
    let (Some(covered), Some(tag)) = (frame.get(..covered_len), frame.get(covered_len..)) else {
        return false;
    };
    let Ok(mut mac) = <PreauthMac as KeyInit>::new_from_slice(key) else {
        return false;
    };
    mac.update(covered);
    mac.verify_slice(tag).is_ok()
}

/// A keyed BLAKE2s of the handshake hash, for values both sides derive from a session.
fn derive(handshake_hash: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    if let Ok(mut mac) = <blake2::Blake2sMac256 as KeyInit>::new_from_slice(handshake_hash) {
        mac.update(label);
        out = mac.finalize().into_bytes().into();
    }
    out
}

/// Writes handshake message `kind` (empty payload, `len` bytes) as a frame into `out`.
fn write_handshake(
    hs: &mut HandshakeState,
    kind: Kind,
    len: usize,
    out: &mut [u8],
) -> Result<usize, LinkError> {
    let total = HEADER_LEN.saturating_add(len);
    let body = out
        .get_mut(HEADER_LEN..total)
        .ok_or(LinkError::BufferTooSmall { needed: total })?;
    let n = hs.write_message(&[], body).map_err(|_| LinkError::Setup)?;
    if n != len {
        return Err(LinkError::Setup);
    }
    Ok(frame::encode_header(kind, n, out)?)
}

/// Reads handshake message `kind` of exactly `len` bytes (no payload) from a frame.
fn read_handshake(
    hs: &mut HandshakeState,
    kind: Kind,
    len: usize,
    bytes: &[u8],
) -> Result<(), LinkError> {
    let f = Frame::new_checked(bytes)?;
    if f.kind() != kind {
        return Err(LinkError::UnexpectedKind {
            expected: kind,
            got: f.kind(),
        });
    }
    let msg = f.payload();
    // Decided from the length alone, before any Diffie-Hellman work: anything longer than
    // the empty-payload message carries a payload.
    if msg.len() > len {
        return Err(LinkError::PayloadInHandshake);
    }
    if msg.len() < len {
        return Err(LinkError::Handshake);
    }
    let mut payload = [0u8; TAG_LEN];
    let n = hs
        .read_message(msg, &mut payload)
        .map_err(|_| LinkError::Handshake)?;
    if n != 0 {
        return Err(LinkError::PayloadInHandshake);
    }
    Ok(())
}

fn remote_of(hs: &HandshakeState) -> Result<PublicKey, LinkError> {
    let rs = hs.get_remote_static().ok_or(LinkError::Handshake)?;
    Ok(PublicKey(
        <[u8; KEY_LEN]>::try_from(rs).map_err(|_| LinkError::Handshake)?,
    ))
}

/// The initiator (programmer or remote) before its first message.
pub struct Initiator {
    hs: HandshakeState,
    header: HelloHeader,
    preauth: [u8; KEY_LEN],
}

impl Initiator {
    /// A handshake from `local` to the pump whose static key is `responder`, with the
    /// hello header and keys of `auth`.
    pub fn new(
        local: &StaticKeypair,
        responder: &PublicKey,
        auth: &HelloAuth,
        entropy: Entropy,
    ) -> Result<Self, LinkError> {
        Ok(Initiator {
            hs: ik(
                true,
                local,
                Some(responder),
                &auth.header,
                auth.psk.as_ref(),
                entropy,
            )?,
            header: auth.header,
            preauth: auth.preauth,
        })
    }

    /// Writes the hello (header, Noise message 1, pre-authentication tag) as a frame into
    /// `out` (needs `HEADER_LEN + HELLO_LEN` bytes); returns the next state and the length.
    pub fn write_hello(mut self, out: &mut [u8]) -> Result<(AwaitingReply, usize), LinkError> {
        let total = HEADER_LEN.saturating_add(HELLO_LEN);
        let covered_len = HEADER_LEN.saturating_add(HELLO_HEADER_LEN + HANDSHAKE_INIT_LEN);
        let frame = out
            .get_mut(..total)
            .ok_or(LinkError::BufferTooSmall { needed: total })?;
        frame::encode_header(Kind::HandshakeInit, HELLO_LEN, frame)?;
        let header_end = HEADER_LEN.saturating_add(HELLO_HEADER_LEN);
        frame
            .get_mut(HEADER_LEN..header_end)
            .ok_or(LinkError::Setup)?
            .copy_from_slice(&self.header.to_bytes());
        let body = frame
            .get_mut(header_end..covered_len)
            .ok_or(LinkError::Setup)?;
        let n = self
            .hs
            .write_message(&[], body)
            .map_err(|_| LinkError::Setup)?;
        if n != HANDSHAKE_INIT_LEN {
            return Err(LinkError::Setup);
        }
        let tag = preauth_tag(
            &self.preauth,
            frame.get(..covered_len).ok_or(LinkError::Setup)?,
        )?;
        frame
            .get_mut(covered_len..)
            .ok_or(LinkError::Setup)?
            .copy_from_slice(&tag);
        Ok((AwaitingReply { hs: self.hs }, total))
    }
}

impl fmt::Debug for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Initiator(..)")
    }
}

/// The initiator after message 1, waiting for the pump's reply.
pub struct AwaitingReply {
    hs: HandshakeState,
}

impl AwaitingReply {
    /// Reads handshake message 2 (a frame); on success the session is established.
    pub fn read_reply(mut self, frame: &[u8]) -> Result<Session, LinkError> {
        read_handshake(
            &mut self.hs,
            Kind::HandshakeReply,
            HANDSHAKE_REPLY_LEN,
            frame,
        )?;
        Session::from_handshake(self.hs)
    }
}

impl fmt::Debug for AwaitingReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AwaitingReply(..)")
    }
}

/// The responder (the pump) waiting for message 1.
pub struct Responder {
    hs: HandshakeState,
    header: HelloHeader,
}

impl Responder {
    /// A responder with the pump's static key pair, for the hello whose header is
    /// `header` (read with [`HelloHeader::peek`]) and, for an enrolment, the window's
    /// pre-shared key.
    pub fn new(
        local: &StaticKeypair,
        header: &HelloHeader,
        psk: Option<&[u8; KEY_LEN]>,
        entropy: Entropy,
    ) -> Result<Self, LinkError> {
        Ok(Responder {
            hs: ik(false, local, None, header, psk, entropy)?,
            header: *header,
        })
    }

    /// Reads the hello's Noise message 1 (two X25519 operations). The caller checks the
    /// header and the pre-authentication tag first ([`HelloHeader::peek`],
    /// [`verify_preauth`]), and [`HelloReceived::initiator_static`] against its enrolled
    /// devices before replying.
    pub fn read_hello(mut self, frame: &[u8]) -> Result<HelloReceived, LinkError> {
        let header = HelloHeader::peek(frame)?;
        if header != self.header {
            return Err(LinkError::Handshake);
        }
        let msg = Frame::new_checked(frame)?
            .payload()
            .get(HELLO_HEADER_LEN..HELLO_HEADER_LEN + HANDSHAKE_INIT_LEN)
            .ok_or(LinkError::Handshake)?;
        let mut payload = [0u8; TAG_LEN];
        let n = self
            .hs
            .read_message(msg, &mut payload)
            .map_err(|_| LinkError::Handshake)?;
        if n != 0 {
            return Err(LinkError::PayloadInHandshake);
        }
        let initiator = remote_of(&self.hs)?;
        Ok(HelloReceived {
            hs: self.hs,
            initiator,
        })
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Responder(..)")
    }
}

/// The responder after an authentic-looking message 1: the initiator's static key is known
/// but not yet proven (IK's message 1 can be replayed); only a session transport message
/// proves the initiator is live.
pub struct HelloReceived {
    hs: HandshakeState,
    initiator: PublicKey,
}

impl HelloReceived {
    /// The initiator's static public key (look it up among the enrolled devices; drop this
    /// state if it is not enrolled).
    pub const fn initiator_static(&self) -> &PublicKey {
        &self.initiator
    }

    /// Writes handshake message 2 as a frame into `out` (needs
    /// `HEADER_LEN + HANDSHAKE_REPLY_LEN` bytes); returns the session and the length.
    pub fn write_reply(mut self, out: &mut [u8]) -> Result<(Session, usize), LinkError> {
        let n = write_handshake(&mut self.hs, Kind::HandshakeReply, HANDSHAKE_REPLY_LEN, out)?;
        Ok((Session::from_handshake(self.hs)?, n))
    }
}

impl fmt::Debug for HelloReceived {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HelloReceived")
            .field("initiator", &self.initiator)
            .finish_non_exhaustive()
    }
}

/// An established session: encrypts and decrypts transport frames.
pub struct Session {
    transport: StatelessTransportState,
    send_nonce: u64,
    recv_nonce: u64,
    remote: Option<PublicKey>,
    handshake_hash: [u8; 32],
}

impl Session {
    pub(crate) fn from_handshake(hs: HandshakeState) -> Result<Self, LinkError> {
        let handshake_hash =
            <[u8; 32]>::try_from(hs.get_handshake_hash()).map_err(|_| LinkError::Setup)?;
        let remote = remote_of(&hs).ok();
        let transport = hs
            .into_stateless_transport_mode()
            .map_err(|_| LinkError::Handshake)?;
        Ok(Session {
            transport,
            send_nonce: 0,
            recv_nonce: 0,
            remote,
            handshake_hash,
        })
    }

    /// Encrypts `payload` into a transport frame in `out`; returns the frame length
    /// (`HEADER_LEN + payload.len() + TAG_LEN`). On error nothing advances.
    pub fn write_message(&mut self, payload: &[u8], out: &mut [u8]) -> Result<usize, LinkError> {
        if payload.len() > MAX_PLAINTEXT {
            return Err(LinkError::TooLong { max: MAX_PLAINTEXT });
        }
        let next = self
            .send_nonce
            .checked_add(1)
            .filter(|_| self.send_nonce < NONCE_LIMIT)
            .ok_or(LinkError::NonceExhausted)?;
        let len = payload.len().saturating_add(TAG_LEN);
        let total = HEADER_LEN.saturating_add(len);
        let body = out
            .get_mut(HEADER_LEN..total)
            .ok_or(LinkError::BufferTooSmall { needed: total })?;
        let n = self
            .transport
            .write_message(self.send_nonce, payload, body)
            .map_err(|_| LinkError::Setup)?;
        let total = frame::encode_header(Kind::Transport, n, out)?;
        self.send_nonce = next;
        Ok(total)
    }

    /// Decrypts a transport frame into `out`; returns the plaintext length. A frame that
    /// does not authenticate is [`LinkError::Decrypt`], leaves the receive nonce where it
    /// was, and leaves `out` zeroed.
    pub fn read_message(&mut self, frame: &[u8], out: &mut [u8]) -> Result<usize, LinkError> {
        let f = Frame::new_checked(frame)?;
        if f.kind() != Kind::Transport {
            return Err(LinkError::UnexpectedKind {
                expected: Kind::Transport,
                got: f.kind(),
            });
        }
        let next = self
            .recv_nonce
            .checked_add(1)
            .filter(|_| self.recv_nonce < NONCE_LIMIT)
            .ok_or(LinkError::NonceExhausted)?;
        let ciphertext = f.payload();
        let needed = ciphertext
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(LinkError::Decrypt)?;
        let out = out
            .get_mut(..needed)
            .ok_or(LinkError::BufferTooSmall { needed })?;
        match self
            .transport
            .read_message(self.recv_nonce, ciphertext, out)
        {
            Ok(n) => {
                self.recv_nonce = next;
                Ok(n)
            }
            Err(_) => {
                out.fill(0);
                Err(LinkError::Decrypt)
            }
        }
    }

    /// The peer's static public key (the initiator's, on the pump; the pump's, on the
    /// programmer).
    pub fn remote_static(&self) -> Option<&PublicKey> {
        self.remote.as_ref()
    }

    /// The Noise handshake hash: the same on both sides, unique to this session (channel
    /// binding).
    pub const fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }

    /// The short fingerprint both sides of an enrolment show, for a person to compare:
    /// six decimal digits derived from the handshake hash (a man in the middle has a
    /// different handshake with each side, so the two fingerprints differ).
    pub fn fingerprint(&self) -> u32 {
        let d = derive(&self.handshake_hash, b"thecal-link/1 fingerprint");
        let [a, b, c, e, ..] = d;
        u32::from_le_bytes([a, b, c, e]) % 1_000_000
    }

    /// The pre-authentication key of the device enrolled by this (enrolment) session:
    /// both sides derive it from the handshake hash, so it never travels.
    pub fn enrolled_preauth_key(&self) -> [u8; KEY_LEN] {
        derive(
            &self.handshake_hash,
            b"thecal-link/1 pre-authentication key",
        )
    }

    /// The nonce the next sent message will use (the count of messages sent).
    pub const fn sending_nonce(&self) -> u64 {
        self.send_nonce
    }

    /// The nonce the next received message must have used (the count received).
    pub const fn receiving_nonce(&self) -> u64 {
        self.recv_nonce
    }

    #[cfg(test)]
    pub(crate) fn set_nonces_for_test(&mut self, send: u64, recv: u64) {
        self.send_nonce = send;
        self.recv_nonce = recv;
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("remote", &self.remote)
            .field("send_nonce", &self.send_nonce)
            .field("recv_nonce", &self.recv_nonce)
            .finish_non_exhaustive()
    }
}
