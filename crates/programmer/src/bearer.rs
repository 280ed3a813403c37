//! The loopback UDP bearer: one datagram carries one link frame (at most
//! [`thecal_link::frame::MAX_FRAME`] bytes). This module is the client side (programmer,
//! remote, and the clinic's programmer station): a socket with per-connection counters,
//! the hello with its retries, and request/answer round trips over an established
//! session. It never prints; failures are [`Fail`] values for the caller to show.

use std::net::{SocketAddr, ToSocketAddrs as _, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use thecal_link::frame::{Kind, MAX_FRAME};
use thecal_link::session::MAX_PLAINTEXT;
use thecal_link::{
    Answer, Body, Entropy, Frame, HelloAuth, HelloHeader, Initiator, LinkError, PublicKey, Reply,
    Request, Session,
};

use crate::keyfile::{Key, random_u32, random32};

/// How long a client waits for each answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_millis(1500);

/// How many hellos (each fresh) or sends of one request a client tries.
pub const TRIES: u32 = 3;

/// How a client subcommand failed.
#[derive(Debug)]
pub enum Fail {
    /// Bad input: exit status 2.
    Usage(String),
    /// The pump refused, did not answer, or a file could not be used: exit status 1.
    Runtime(String),
    /// A refusal with its own exit status: 3 a hard finding, 4 a soft finding without
    /// `--confirm-soft`, 5 a read-back that disagrees with what was sent.
    Exit(u8, String),
    /// The pump answered, but not as asked: a refusal (with its code and text), a
    /// malformed command, or an answer of another kind. The caller puts it in words.
    Refused(Box<Reply>),
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Usage(m) | Fail::Runtime(m) | Fail::Exit(_, m) => f.write_str(m),
            Fail::Refused(r) => match r.as_ref() {
                Reply::Refused { code, text } => {
                    write!(f, "the pump refused (code {code}): {}", text.as_str())
                }
                Reply::Malformed => f.write_str("the pump could not decode the command"),
                other => write!(f, "unexpected answer from the pump: {other:?}"),
            },
        }
    }
}

/// Exit status of a hard finding, refused before anything is sent.
pub const EXIT_HARD: u8 = 3;
/// Exit status of a soft finding sent without `--confirm-soft REASON`.
pub const EXIT_SOFT_UNCONFIRMED: u8 = 4;
/// Exit status of a read-back that disagrees with what was sent.
pub const EXIT_READ_BACK: u8 = 5;

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Runtime(s)
    }
}

/// What one invocation put on the air.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes sent (every datagram, including retries).
    pub bytes_sent: u64,
    /// Bytes received from the pump.
    pub bytes_received: u64,
    /// Datagrams sent.
    pub frames_sent: u32,
    /// Datagrams received.
    pub frames_received: u32,
    /// Exchanges that got an answer (the handshake counts as one).
    pub round_trips: u32,
}

impl Stats {
    /// As JSON.
    pub fn json(&self) -> Value {
        json!({
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "bytes_total": self.bytes_sent + self.bytes_received,
            "frames_sent": self.frames_sent,
            "frames_received": self.frames_received,
            "round_trips": self.round_trips,
        })
    }

    /// One line of text.
    pub fn line(&self) -> String {
        format!(
            "on air: {} bytes sent, {} received ({} total) in {} round trip(s), {} frame(s) sent",
            self.bytes_sent,
            self.bytes_received,
            self.bytes_sent + self.bytes_received,
            self.round_trips,
            self.frames_sent
        )
    }
}

/// A UDP socket talking to one pump.
#[derive(Debug)]
pub struct Bearer {
    socket: UdpSocket,
    peer: SocketAddr,
    timeout: Duration,
    /// The pump's host answered a datagram with "port unreachable": nothing listens.
    pub refused: bool,
    /// What went over the air.
    pub stats: Stats,
}

impl Bearer {
    /// A socket for the pump at `addr` (`HOST:PORT`).
    pub fn new(addr: &str, timeout: Duration) -> Result<Bearer, Fail> {
        let peer = addr
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                Fail::Usage(format!(
                    "--implant '{addr}' is not an address; expected HOST:PORT, e.g. 127.0.0.1:7011"
                ))
            })?;
        let local = if peer.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(local)
            .map_err(|e| Fail::Runtime(format!("cannot open a socket: {e}")))?;
        // Connected, so the host's "port unreachable" reaches us: nothing listens there.
        socket
            .connect(peer)
            .map_err(|e| Fail::Runtime(format!("cannot open a socket to {peer}: {e}")))?;
        Ok(Bearer {
            socket,
            peer,
            timeout,
            refused: false,
            stats: Stats::default(),
        })
    }

    /// The pump's address.
    pub const fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Sends one frame.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), Fail> {
        match self.socket.send(frame) {
            Ok(_) => {}
            // A "port unreachable" from an earlier send: nobody listens (yet); the frame
            // is sent once more for a pump that is just starting.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                self.refused = true;
                let _ = self.socket.send(frame);
            }
            Err(e) => return Err(Fail::Runtime(format!("cannot send to {}: {e}", self.peer))),
        }
        self.stats.bytes_sent += frame.len() as u64;
        self.stats.frames_sent += 1;
        Ok(())
    }

    /// Waits up to the timeout for a frame from the pump (datagrams from anyone else are
    /// ignored). `None` on timeout.
    pub fn recv(&mut self) -> Result<Option<Vec<u8>>, Fail> {
        let deadline = Instant::now() + self.timeout;
        let mut buf = vec![0u8; MAX_FRAME + 1];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket
                .set_read_timeout(Some(left))
                .map_err(|e| Fail::Runtime(e.to_string()))?;
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) if from == self.peer && n <= MAX_FRAME => {
                    self.refused = false;
                    self.stats.bytes_received += n as u64;
                    self.stats.frames_received += 1;
                    return Ok(Some(buf[..n].to_vec()));
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                // An ICMP "port unreachable" from a previous send: nobody listens (yet).
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    self.refused = true;
                    std::thread::sleep(left.min(Duration::from_millis(50)));
                }
                Err(e) => return Err(Fail::Runtime(format!("cannot receive: {e}"))),
            }
        }
    }

    /// Sends `frame` and waits for an answer, sending the same frame again on timeout
    /// (at most `tries` sends). `None` when nothing came back.
    pub fn exchange(&mut self, frame: &[u8], tries: u32) -> Result<Option<Vec<u8>>, Fail> {
        for _ in 0..tries {
            self.send(frame)?;
            if let Some(answer) = self.recv()? {
                self.stats.round_trips += 1;
                return Ok(Some(answer));
            }
        }
        Ok(None)
    }
}

/// Nothing listens at the pump's address.
pub fn nothing_listening(addr: SocketAddr) -> String {
    format!(
        "nothing is listening at {addr} (its host refused the datagrams): check the \
         address, and that the implant is running (thecal implant --state DIR --listen {addr})"
    )
}

/// The message for a pump that does not answer an enrolled device's hello. The pump
/// answers no hello it refuses, so the client can only name the causes left.
pub fn no_answer(addr: SocketAddr) -> String {
    format!(
        "no answer from the pump at {addr}. The pump does not answer a hello it refuses, \
         so one of these holds: this key is not enrolled with this pump, or it may have \
         been revoked (a clinician can check: thecal programmer ... devices); or the \
         pump's radio is backing off after refused connections or asleep after spending \
         its daily energy (a clinician wakes it by holding the wand over the pump: \
         thecal programmer wand --state DIR)"
    )
}

/// The message for a pump that does not answer an enrolment hello.
pub fn no_enrolment_answer(addr: SocketAddr, registry_full: bool) -> String {
    if registry_full {
        return format!(
            "no answer from the pump at {addr}: its registry of devices is full. A \
             clinician must revoke a device that is no longer used and remove it \
             (thecal programmer ... revoke KEY_ID, then remove KEY_ID), then open a new \
             window"
        );
    }
    format!(
        "no answer from the pump at {addr} to the enrolment: the window has expired or \
         was used already, or this key is already enrolled (a clinician can check: \
         thecal programmer ... devices) — open a new window (thecal programmer wand \
         --enrol, or thecal programmer enroll-remote) and try again"
    )
}

/// How a hello authenticates.
#[derive(Clone)]
pub enum Hello {
    /// An enrolled device: its key file's pairing.
    Enrolled,
    /// A pairing given by the caller (a station enrolled with many pumps keeps one
    /// pairing per pump beside its one key).
    Paired {
        /// The implant's static key.
        implant: PublicKey,
        /// This device's pre-authentication key with that implant.
        preauth: [u8; 32],
        /// This device's key id.
        key_id: u32,
    },
    /// An enrolment: the window's pre-shared key and the implant's key.
    Enrol {
        /// The window's key.
        psk: [u8; 32],
        /// The implant's static key.
        implant: PublicKey,
        /// The implant said its registry was full when the window opened.
        registry_full: bool,
    },
}

/// An established session with a pump.
pub struct Client {
    /// The socket and its counters.
    pub bearer: Bearer,
    /// The Noise transport.
    pub session: Session,
    next_id: u32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.bearer.peer)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects: a handshake, then requests over the session.
    pub fn connect(mut bearer: Bearer, key: &mut Key, hello: Hello) -> Result<Client, Fail> {
        let session = handshake(&mut bearer, key, &hello)?;
        Ok(Client {
            bearer,
            session,
            next_id: random_u32()?,
        })
    }

    /// A fresh handshake on the same socket (after a pause long enough for the pump to
    /// have closed the session, such as a confirmation prompt).
    pub fn reconnect(&mut self, key: &mut Key) -> Result<(), Fail> {
        self.reconnect_with(key, &Hello::Enrolled)
    }

    /// [`Client::reconnect`] with the given hello (a station's pairing).
    pub fn reconnect_with(&mut self, key: &mut Key, hello: &Hello) -> Result<(), Fail> {
        self.session = handshake(&mut self.bearer, key, hello)?;
        Ok(())
    }
}

/// Says hello (up to [`TRIES`] times, each with a fresh counter saved in the key file
/// before it is sent) and returns the session.
fn handshake(bearer: &mut Bearer, key: &mut Key, hello: &Hello) -> Result<Session, Fail> {
    let mut buf = vec![0u8; MAX_FRAME];
    for _ in 0..TRIES {
        let counter = key.next_counter()?;
        let (implant, auth) = match hello {
            Hello::Enrolled => {
                let (implant, preauth, key_id) = key.pairing()?;
                (
                    implant,
                    HelloAuth {
                        header: HelloHeader { key_id, counter },
                        preauth,
                        psk: None,
                    },
                )
            }
            Hello::Paired {
                implant,
                preauth,
                key_id,
            } => (
                *implant,
                HelloAuth {
                    header: HelloHeader {
                        key_id: *key_id,
                        counter,
                    },
                    preauth: *preauth,
                    psk: None,
                },
            ),
            Hello::Enrol { psk, implant, .. } => (
                *implant,
                HelloAuth {
                    header: HelloHeader { key_id: 0, counter },
                    preauth: *psk,
                    psk: Some(*psk),
                },
            ),
        };
        let init = Initiator::new(&key.keys, &implant, &auth, Entropy::new(random32()?))
            .map_err(|e| Fail::Runtime(format!("handshake setup: {e}")))?;
        let (awaiting, n) = init
            .write_hello(&mut buf)
            .map_err(|e| Fail::Runtime(format!("handshake: {e}")))?;
        let Some(reply) = bearer.exchange(&buf[..n], 1)? else {
            continue;
        };
        return awaiting
            .read_reply(&reply)
            .map_err(|e| Fail::Runtime(format!("the pump's handshake reply failed: {e}")));
    }
    Err(Fail::Runtime(match hello {
        _ if bearer.refused => nothing_listening(bearer.peer),
        Hello::Enrolled | Hello::Paired { .. } => no_answer(bearer.peer),
        Hello::Enrol { registry_full, .. } => no_enrolment_answer(bearer.peer, *registry_full),
    }))
}

impl Client {
    /// Sends one request and returns the pump's reply.
    pub fn request(&mut self, body: Body) -> Result<Reply, Fail> {
        let command_id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let request = Request { command_id, body };
        let mut plain = vec![0u8; MAX_PLAINTEXT];
        let encoded = request
            .encode(&mut plain)
            .map_err(|e| Fail::Runtime(format!("cannot encode the command: {e}")))?;
        let mut out = vec![0u8; MAX_FRAME];
        let n = self
            .session
            .write_message(encoded, &mut out)
            .map_err(|e| Fail::Runtime(format!("cannot encrypt the command: {e}")))?;
        let mut answer = self.bearer.exchange(&out[..n], TRIES)?;
        let mut plain = vec![0u8; MAX_PLAINTEXT];
        // A frame that does not authenticate leaves the session as it was. One that came
        // late is expected: the pump answers a resent request again from its cache, so
        // after a resend the answer to an earlier request can still be on its way. Such
        // a frame is set aside and the answer to this request awaited (resending as
        // before), up to `TRIES` stale frames.
        let mut stale = 0u32;
        let m = loop {
            let Some(bytes) = answer.take() else {
                return Err(Fail::Runtime(format!(
                    "the pump at {} stopped answering during the session; the command may \
                     or may not have been carried out — interrogate the pump to check",
                    self.bearer.peer
                )));
            };
            let frame = Frame::new_checked(&bytes)
                .map_err(|e| Fail::Runtime(format!("bad frame from the pump: {e}")))?;
            let read = if frame.kind() == Kind::Transport {
                self.session.read_message(&bytes, &mut plain)
            } else {
                // A handshake reply now can only answer an earlier hello, resent.
                Err(LinkError::UnexpectedKind {
                    expected: Kind::Transport,
                    got: frame.kind(),
                })
            };
            match read {
                Ok(m) => break m,
                Err(LinkError::Decrypt | LinkError::UnexpectedKind { .. }) if stale < TRIES => {
                    stale += 1;
                    answer = match self.bearer.recv()? {
                        Some(next) => Some(next),
                        None => self.bearer.exchange(&out[..n], TRIES)?,
                    };
                }
                Err(e) => {
                    return Err(Fail::Runtime(format!(
                        "the pump's answer did not authenticate: {e}"
                    )));
                }
            }
        };
        let answer = Answer::decode(&plain[..m])
            .map_err(|e| Fail::Runtime(format!("the pump's answer is malformed: {e}")))?;
        if answer.command_id != command_id {
            return Err(Fail::Runtime(format!(
                "the pump answered command {} instead of {command_id}",
                answer.command_id
            )));
        }
        Ok(answer.reply)
    }
}

/// Kind of a raw frame, if it is one.
pub fn frame_kind(bytes: &[u8]) -> Option<Kind> {
    Frame::new_checked(bytes).ok().map(|f| f.kind())
}

/// Encodes a frame.
#[cfg(test)]
fn encode_frame(kind: Kind, payload: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![0u8; MAX_FRAME];
    let n = thecal_link::frame::encode(kind, payload, &mut out).ok()?;
    out.truncate(n);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_pump_is_retried_then_given_up() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap().to_string();
        let mut b = Bearer::new(&addr, Duration::from_millis(100)).unwrap();
        let t = Instant::now();
        assert!(b.exchange(b"abc", 3).unwrap().is_none());
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert_eq!(b.stats.frames_sent, 3);
        assert_eq!(b.stats.bytes_sent, 9);
        assert_eq!(b.stats.round_trips, 0);
        let mut got = [0u8; 16];
        silent
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        for _ in 0..3 {
            assert_eq!(silent.recv_from(&mut got).unwrap().0, 3);
        }
    }

    #[test]
    fn a_lost_first_answer_is_recovered_by_a_resend() {
        let pump = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = pump.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut got = [0u8; 64];
            // Drop the first datagram, answer the second.
            let _ = pump.recv_from(&mut got).unwrap();
            let (n, from) = pump.recv_from(&mut got).unwrap();
            pump.send_to(&got[..n], from).unwrap();
        });
        let mut b = Bearer::new(&addr.to_string(), Duration::from_millis(200)).unwrap();
        let answer = b.exchange(b"hello", 3).unwrap();
        assert_eq!(answer.as_deref(), Some(&b"hello"[..]));
        assert_eq!(b.stats.frames_sent, 2);
        assert_eq!(b.stats.round_trips, 1);
        assert_eq!(b.stats.bytes_received, 5);
        server.join().unwrap();
    }

    #[test]
    fn a_bad_address_is_bad_input() {
        assert!(matches!(
            Bearer::new("not an address", ANSWER_TIMEOUT),
            Err(Fail::Usage(_))
        ));
    }

    #[test]
    fn frames_are_recognised() {
        let f = encode_frame(Kind::Transport, b"xyz").unwrap();
        assert_eq!(frame_kind(&f), Some(Kind::Transport));
        assert_eq!(frame_kind(b"\x00"), None);
    }
}
