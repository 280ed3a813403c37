//! Fuzz target: the link's frame decoder and message decoders on arbitrary bytes.
//!
//! Asserts: no panic; a frame that decodes re-encodes to exactly the bytes it came
//! from; splitting a stream frame by frame never loops; a request or answer that
//! decodes re-encodes to the same bytes (the decoders are strict: no trailing bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use thecal_link::frame::{Frame, MAX_FRAME};
use thecal_link::{Answer, Request};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::new_checked(data) {
        let mut out = [0u8; MAX_FRAME];
        let n = frame.encode(&mut out).expect("a decoded frame re-encodes");
        assert_eq!(
            &out[..n],
            data,
            "decode then encode must give the input back"
        );
    }
    let mut rest = data;
    let mut frames = 0usize;
    while !rest.is_empty() {
        match Frame::parse_prefix(rest) {
            Ok((_, tail)) => {
                assert!(tail.len() < rest.len(), "a frame must consume bytes");
                rest = tail;
                frames += 1;
            }
            Err(_) => break,
        }
    }
    assert!(frames <= data.len() / 4 + 1);
    let mut buf = [0u8; 4096];
    if let Ok(req) = Request::decode(data) {
        let enc = req.encode(&mut buf).expect("a decoded request re-encodes");
        assert_eq!(Request::decode(enc).ok(), Some(req));
    }
    if let Ok(ans) = Answer::decode(data) {
        let enc = ans.encode(&mut buf).expect("a decoded answer re-encodes");
        assert_eq!(Answer::decode(enc).ok(), Some(ans));
    }
});
