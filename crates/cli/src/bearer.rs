//! The loopback UDP bearer of `thecal programmer` and `thecal remote`
//! ([`thecal_programmer::bearer`]), and the command line's exit statuses.

use std::process::ExitCode;

pub use thecal_programmer::bearer::*;

/// Converts a client result into the binary's convention (`Err`: exit 2).
pub fn finish(r: Result<ExitCode, Fail>) -> Result<ExitCode, String> {
    match r {
        Ok(c) => Ok(c),
        Err(Fail::Usage(m)) => Err(m),
        Err(Fail::Runtime(m)) => {
            eprintln!("error: {m}");
            Ok(ExitCode::from(1))
        }
        Err(Fail::Exit(code, m)) => {
            eprintln!("error: {m}");
            Ok(ExitCode::from(code))
        }
        Err(Fail::Refused(reply)) => finish(Err(crate::programmer::refused(&reply))),
    }
}
