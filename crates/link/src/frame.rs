//! Length-framed link messages with a checked, panic-free decoder.
//!
//! # Wire format
//!
//! ```text
//! +---------+--------+----------------+-------------------+
//! | version | kind   | length (u16 BE)| payload           |
//! | 1 byte  | 1 byte | 2 bytes        | `length` bytes    |
//! +---------+--------+----------------+-------------------+
//! ```
//!
//! * `version` is [`VERSION`]; any other value is [`FrameError::BadVersion`].
//! * `kind` is a [`Kind`] code; any other value is [`FrameError::BadKind`].
//! * `length` is at most [`MAX_PAYLOAD`]; more is [`FrameError::TooLong`] (checked from the
//!   header alone, before the payload is awaited).
//! * A datagram carries exactly one frame: bytes after the payload are
//!   [`FrameError::Trailing`] (use [`Frame::parse_prefix`] on a byte stream).
//!
//! The header is not encrypted or authenticated by itself: the payload of every frame is a
//! Noise message whose authentication covers what matters, and the version and protocol
//! name are bound into the Noise prologue. A tampered `kind` is refused by the session
//! state machine (the kind expected at each step is fixed).
//!
//! # Contract (as smoltcp's `new_checked`)
//!
//! [`Frame::new_checked`] and [`Frame::parse_prefix`] are the only ways to obtain a
//! [`Frame`] from bytes. They never panic, for any input, and either return an error or a
//! `Frame` whose invariants hold: its kind is a known [`Kind`] and its payload is at most
//! [`MAX_PAYLOAD`] bytes and lies entirely inside the input. Once a `Frame` exists, none of
//! its accessors can panic (they return stored fields), and [`Frame::encode`] fails only
//! for a too-small output buffer. The module denies indexing, arithmetic overflow,
//! `unwrap` and `panic!` (crate-level lints), so the decoder is written with `get`,
//! `split_at_checked` and checked arithmetic only.

use core::fmt;

/// The frame format version this build speaks.
pub const VERSION: u8 = 1;

/// Bytes before the payload: version, kind, 2-byte length.
pub const HEADER_LEN: usize = 4;

/// The largest payload a frame may carry (a Noise message: ciphertext and tag).
///
/// Far below Noise's 65 535-byte maximum: the implant's radio buffers are small and a
/// long frame costs energy to receive before it can be rejected.
pub const MAX_PAYLOAD: usize = 1024;

/// The largest frame: header plus [`MAX_PAYLOAD`].
pub const MAX_FRAME: usize = HEADER_LEN + MAX_PAYLOAD;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Noise handshake message 1 (initiator to responder).
    HandshakeInit = 1,
    /// Noise handshake message 2 (responder to initiator).
    HandshakeReply = 2,
    /// A Noise transport message (after the handshake).
    Transport = 3,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 3] = [Kind::HandshakeInit, Kind::HandshakeReply, Kind::Transport];

    /// The wire code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The kind for a wire code, if it is one.
    pub const fn from_code(code: u8) -> Option<Kind> {
        match code {
            1 => Some(Kind::HandshakeInit),
            2 => Some(Kind::HandshakeReply),
            3 => Some(Kind::Transport),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::HandshakeInit => "handshake init",
            Kind::HandshakeReply => "handshake reply",
            Kind::Transport => "transport",
        })
    }
}

/// Why bytes are not a frame, or a frame cannot be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the header or the header's length announces.
    Truncated,
    /// The payload is longer than the format allows.
    TooLong {
        /// The largest payload allowed.
        max: usize,
    },
    /// An unknown format version.
    BadVersion(u8),
    /// An unknown kind code.
    BadKind(u8),
    /// Bytes follow the frame in a datagram that should hold exactly one.
    Trailing,
    /// The output buffer cannot hold the encoded frame.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Truncated => f.write_str("frame truncated"),
            FrameError::TooLong { max } => {
                write!(f, "frame payload too long (at most {max} bytes)")
            }
            FrameError::BadVersion(v) => {
                write!(f, "unknown frame version {v} (this build speaks {VERSION})")
            }
            FrameError::BadKind(k) => write!(f, "unknown frame kind {k}"),
            FrameError::Trailing => f.write_str("bytes after the frame"),
            FrameError::BufferTooSmall { needed } => {
                write!(f, "output buffer too small ({needed} bytes needed)")
            }
        }
    }
}

impl core::error::Error for FrameError {}

/// A checked frame borrowing its payload from the input (see the module contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    kind: Kind,
    payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// A frame to encode. Fails with [`FrameError::TooLong`] above [`MAX_PAYLOAD`].
    pub const fn new(kind: Kind, payload: &'a [u8]) -> Result<Self, FrameError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(FrameError::TooLong { max: MAX_PAYLOAD });
        }
        Ok(Frame { kind, payload })
    }

    /// Decodes exactly one frame occupying all of `bytes` (a datagram).
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let (frame, rest) = Frame::parse_prefix(bytes)?;
        if rest.is_empty() {
            Ok(frame)
        } else {
            Err(FrameError::Trailing)
        }
    }

    /// Decodes one frame from the start of `bytes` (a stream) and returns the rest.
    ///
    /// Errors are reported in header order: a short header is [`FrameError::Truncated`];
    /// then the version, the kind and the announced length are checked before the payload
    /// is required to be present, so an over-long frame is refused from its header alone.
    pub fn parse_prefix(bytes: &'a [u8]) -> Result<(Self, &'a [u8]), FrameError> {
        let (header, body) = bytes
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(FrameError::Truncated)?;
        let [version, kind, len_hi, len_lo] = *header;
        if version != VERSION {
            return Err(FrameError::BadVersion(version));
        }
        let kind = Kind::from_code(kind).ok_or(FrameError::BadKind(kind))?;
        let len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLong { max: MAX_PAYLOAD });
        }
        let (payload, rest) = body.split_at_checked(len).ok_or(FrameError::Truncated)?;
        Ok((Frame { kind, payload }, rest))
    }

    /// What the frame carries.
    pub const fn kind(&self) -> Kind {
        self.kind
    }

    /// The payload.
    pub const fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The encoded length: header plus payload.
    pub const fn encoded_len(&self) -> usize {
        // Cannot overflow: the payload is at most MAX_PAYLOAD (checked at construction).
        HEADER_LEN.saturating_add(self.payload.len())
    }

    /// Writes the frame to the start of `out`; returns the bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, FrameError> {
        let needed = self.encoded_len();
        let dst = out
            .get_mut(..needed)
            .ok_or(FrameError::BufferTooSmall { needed })?;
        let (header, body) = dst
            .split_first_chunk_mut::<HEADER_LEN>()
            .ok_or(FrameError::BufferTooSmall { needed })?;
        let len = u16::try_from(self.payload.len())
            .map_err(|_| FrameError::TooLong { max: MAX_PAYLOAD })?;
        let [hi, lo] = len.to_be_bytes();
        *header = [VERSION, self.kind.code(), hi, lo];
        body.copy_from_slice(self.payload);
        Ok(needed)
    }
}

/// Encodes a frame of `kind` carrying `payload` into `out`; returns the bytes written.
pub fn encode(kind: Kind, payload: &[u8], out: &mut [u8]) -> Result<usize, FrameError> {
    Frame::new(kind, payload)?.encode(out)
}

/// Writes a frame header for a payload of `payload_len` bytes into `out`, for callers that
/// produce the payload in place after the header (the session encrypts straight into the
/// frame buffer). Returns the total frame length.
pub(crate) fn encode_header(
    kind: Kind,
    payload_len: usize,
    out: &mut [u8],
) -> Result<usize, FrameError> {
    if payload_len > MAX_PAYLOAD {
        return Err(FrameError::TooLong { max: MAX_PAYLOAD });
    }
    let len = u16::try_from(payload_len).map_err(|_| FrameError::TooLong { max: MAX_PAYLOAD })?;
    let needed = HEADER_LEN.saturating_add(payload_len);
    if out.len() < needed {
        return Err(FrameError::BufferTooSmall { needed });
    }
    let header = out
        .first_chunk_mut::<HEADER_LEN>()
        .ok_or(FrameError::BufferTooSmall { needed })?;
    let [hi, lo] = len.to_be_bytes();
    *header = [VERSION, kind.code(), hi, lo];
    Ok(needed)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = Kind> {
        prop::sample::select(Kind::ALL.to_vec())
    }

    #[test]
    fn known_bytes() {
        let mut buf = [0u8; 16];
        let n = encode(Kind::Transport, b"abc", &mut buf).unwrap();
        assert_eq!(&buf[..n], &[1, 3, 0, 3, b'a', b'b', b'c']);
        let f = Frame::new_checked(&buf[..n]).unwrap();
        assert_eq!(f.kind(), Kind::Transport);
        assert_eq!(f.payload(), b"abc");
    }

    #[test]
    fn typed_errors() {
        assert_eq!(Frame::new_checked(&[]), Err(FrameError::Truncated));
        assert_eq!(Frame::new_checked(&[1, 3, 0]), Err(FrameError::Truncated));
        assert_eq!(
            Frame::new_checked(&[1, 3, 0, 2, 9]),
            Err(FrameError::Truncated)
        );
        assert_eq!(
            Frame::new_checked(&[2, 3, 0, 0]),
            Err(FrameError::BadVersion(2))
        );
        assert_eq!(
            Frame::new_checked(&[1, 0, 0, 0]),
            Err(FrameError::BadKind(0))
        );
        assert_eq!(
            Frame::new_checked(&[1, 4, 0, 0]),
            Err(FrameError::BadKind(4))
        );
        assert_eq!(
            Frame::new_checked(&[1, 3, 0xff, 0xff]),
            Err(FrameError::TooLong { max: MAX_PAYLOAD })
        );
        assert_eq!(
            Frame::new_checked(&[1, 3, 0, 0, 7]),
            Err(FrameError::Trailing)
        );
        let big = vec![0u8; MAX_PAYLOAD + 1];
        assert_eq!(
            encode(Kind::Transport, &big, &mut [0u8; 2048]),
            Err(FrameError::TooLong { max: MAX_PAYLOAD })
        );
        assert_eq!(
            encode(Kind::Transport, b"abc", &mut [0u8; 6]),
            Err(FrameError::BufferTooSmall { needed: 7 })
        );
        // Every error has a message.
        for e in [
            FrameError::Truncated,
            FrameError::TooLong { max: 3 },
            FrameError::BadVersion(9),
            FrameError::BadKind(9),
            FrameError::Trailing,
            FrameError::BufferTooSmall { needed: 3 },
        ] {
            assert!(!alloc::format!("{e}").is_empty());
        }
    }

    #[test]
    fn largest_frame() {
        let payload = vec![0xa5u8; MAX_PAYLOAD];
        let mut buf = vec![0u8; MAX_FRAME];
        let n = encode(Kind::HandshakeInit, &payload, &mut buf).unwrap();
        assert_eq!(n, MAX_FRAME);
        assert_eq!(Frame::new_checked(&buf).unwrap().payload(), &payload[..]);
    }

    #[test]
    fn prefix_returns_rest() {
        let mut buf = [0u8; 32];
        let a = encode(Kind::HandshakeInit, b"x", &mut buf).unwrap();
        let b = encode(Kind::Transport, b"yz", &mut buf[a..]).unwrap();
        let (f1, rest) = Frame::parse_prefix(&buf[..a + b]).unwrap();
        assert_eq!((f1.kind(), f1.payload()), (Kind::HandshakeInit, &b"x"[..]));
        let f2 = Frame::new_checked(rest).unwrap();
        assert_eq!((f2.kind(), f2.payload()), (Kind::Transport, &b"yz"[..]));
    }

    proptest! {
        #[test]
        fn decode_encode_is_identity(
            kind in kind(),
            payload in prop::collection::vec(any::<u8>(), 0..=MAX_PAYLOAD),
        ) {
            let mut buf = vec![0u8; MAX_FRAME];
            let n = encode(kind, &payload, &mut buf).unwrap();
            prop_assert_eq!(n, HEADER_LEN + payload.len());
            let f = Frame::new_checked(&buf[..n]).unwrap();
            prop_assert_eq!(f.kind(), kind);
            prop_assert_eq!(f.payload(), &payload[..]);
            // And re-encoding the decoded frame gives the same bytes.
            let mut again = vec![0u8; n];
            prop_assert_eq!(f.encode(&mut again), Ok(n));
            prop_assert_eq!(&again[..], &buf[..n]);
        }

        #[test]
        fn any_bytes_decode_or_error(bytes in prop::collection::vec(any::<u8>(), 0..1100)) {
            match Frame::new_checked(&bytes) {
                Ok(f) => {
                    prop_assert!(f.payload().len() <= MAX_PAYLOAD);
                    prop_assert_eq!(f.encoded_len(), bytes.len());
                    let mut out = vec![0u8; f.encoded_len()];
                    f.encode(&mut out).unwrap();
                    prop_assert_eq!(out, bytes);
                }
                Err(e) => {
                    let _ = alloc::format!("{e}");
                }
            }
        }

        #[test]
        fn valid_header_any_tail(
            kind in any::<u8>(),
            len in any::<u16>(),
            tail in prop::collection::vec(any::<u8>(), 0..1100),
        ) {
            let mut bytes: Vec<u8> = vec![VERSION, kind];
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(&tail);
            let r = Frame::new_checked(&bytes);
            let expected = if Kind::from_code(kind).is_none() {
                Err(FrameError::BadKind(kind))
            } else if usize::from(len) > MAX_PAYLOAD {
                Err(FrameError::TooLong { max: MAX_PAYLOAD })
            } else if tail.len() < usize::from(len) {
                Err(FrameError::Truncated)
            } else if tail.len() > usize::from(len) {
                Err(FrameError::Trailing)
            } else {
                Ok(())
            };
            prop_assert_eq!(r.map(|_| ()), expected);
        }
    }
}
