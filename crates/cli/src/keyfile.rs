//! Device key files and private writes ([`thecal_programmer::keyfile`]).

pub use thecal_programmer::keyfile::*;
