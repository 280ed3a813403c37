//! A late or repeated answer from the pump never fails the next request (LINK-038).
//!
//! The pump answers a resent request again from its cache, so after the programmer
//! resends (its answer was slow, not lost) a second copy of an answer is still on its
//! way when the next request goes out. Here a relay between the programmer and a real
//! virtual implant sends every answer of the session twice, and a hello's answer twice
//! too: each request must still get its own answer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use thecal_link::{Frame, Kind};
use thecal_programmer::bearer::Bearer;
use thecal_programmer::implant::{self, Config, Voice};
use thecal_programmer::keyfile::{DeviceKind, Key};
use thecal_programmer::session;

/// A relay on loopback that forwards the programmer's datagrams to the pump and sends
/// each of the pump's answers back twice.
struct Relay {
    addr: SocketAddr,
    doubled: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(pump: SocketAddr) -> Relay {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let doubled = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (doubled, stop) = (doubled.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut programmer: Option<SocketAddr> = None;
                let mut buf = vec![0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let datagram = &buf[..n];
                    if from == pump {
                        let Some(to) = programmer else { continue };
                        let kind = Frame::new_checked(datagram).map(|f| f.kind()).ok();
                        let twice = matches!(kind, Some(Kind::Transport | Kind::HandshakeReply));
                        // Counted before the answer goes out: once the programmer has
                        // it, the count already includes it.
                        if twice {
                            doubled.fetch_add(1, Ordering::SeqCst);
                        }
                        socket.send_to(datagram, to).unwrap();
                        if twice {
                            socket.send_to(datagram, to).unwrap();
                        }
                    } else {
                        programmer = Some(from);
                        socket.send_to(datagram, pump).unwrap();
                    }
                }
            })
        };
        Relay {
            addr,
            doubled,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn an_answer_that_arrives_twice_never_fails_the_next_request_link_038() {
    implant::set_voice(Voice::Silent);
    let dir = std::env::temp_dir().join(format!(
        "thecal-late-answers-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let state = dir.join("pump");
    let running = implant::spawn(Config::new(&state), "127.0.0.1:0").unwrap();
    let relay = Relay::start(running.addr);

    let (token, _) = implant::wand(&state, Duration::from_secs(5), true).unwrap();
    let token = std::fs::read_to_string(token).unwrap();
    let invitation =
        session::parse_invitation(&token, "proximity token", implant::unix_ms() as i64).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let mut key = Key::generate(&dir.join("programmer.key"), DeviceKind::Programmer).unwrap();
    let bearer = Bearer::new(&relay.addr.to_string(), Duration::from_millis(300)).unwrap();
    let (mut client, _pairing) =
        session::enrol(bearer, &mut key, &invitation, &relay.addr.to_string()).unwrap();

    // Every answer reaches the programmer twice; each request still gets its own.
    let mut readings = Vec::new();
    for _ in 0..5 {
        readings.push(session::status(&mut client).unwrap().reservoir);
    }
    assert!(
        relay.doubled.load(Ordering::SeqCst) >= 6,
        "the relay sent the hello's answer and every status answer twice"
    );
    assert!(readings.iter().all(|r| *r == readings[0]));
    // And the session is still sound: the pump's log reads back and checks.
    let log = session::read_log(&mut client, 0);
    assert!(log.is_ok(), "{:?}", log.err());

    drop(client);
    drop(relay);
    running.stop().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
