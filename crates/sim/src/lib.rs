//! # thecal-sim: the digital twin
//!
//! Runs the **real** pump core ([`thecal_pump::core::Pump`]) against models of
//! everything it cannot see: the true pump mechanics, the catheter, the battery, the
//! patient, the clinic (refills, reprogramming, human errors) and faults. Event-driven
//! on a virtual clock: the engine asks the core when it next needs to run and jumps
//! there, so years cost no more than the events in them. Deterministic for a seed.
//!
//! | module | owns |
//! |---|---|
//! | [`models`] | physics and physiology: pump mechanisms, catheter, environment, patient |
//! | [`engine`] | the event loop around the core |
//! | [`lookahead`] | the look ahead: the core run forward from an interrogated state with a proposed change |
//! | [`clock`] | the scenario's clock events: a signed clock shift, a UTC offset |
//! | [`expect`] | the verdicts of the newer expectations (priority, alarm gap, rolling 24 h boluses, tip-dose band, interruption) |
//! | [`scenario`] | the TOML scenario format, expectations and their verdicts |
//! | [`prescription_file`] | the TOML prescription format shared with `thecal calc check` |
//! | [`result`] | what a run produces |
//! | [`report`] | summary.json, timeline.csv, SVG plots, HTML |
//! | [`plot`] | the one plotting implementation: the reports' charts and the clinic console's |
//! | [`accuracy`] | the IEC 60601-2-24 trumpet curve |
//! | [`population`] | Monte Carlo over patients and devices |
//! | [`radio`] | the telemetry: a patient remote over the real link, attackers on the air |
//! | [`truth`] | the true catheter contents, independent of the pump's fluid path |

pub mod accuracy;
pub mod clock;
pub mod engine;
pub mod expect;
pub mod lookahead;
pub mod models;
pub mod plot;
pub mod population;
/// The prescription file format now lives in `thecal_rx::file`.
pub use thecal_rx::file as prescription_file;
pub mod radio;
pub mod report;
pub mod result;
pub mod risks;
pub mod scenario;
pub mod truth;
