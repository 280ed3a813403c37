//! Opioid conversion: oral, intravenous or epidural doses, and other intrathecal opioids,
//! to and from **intrathecal morphine equivalents**, by the equianalgesic table of
//! CLINIC.md §4. Decision support only: the prescriber enters the dose.
//!
//! Each ratio carries its source; values marked `check` were not read in a primary
//! document. Cross-tolerance between opioids is incomplete, so after a switch the
//! customary practice is to start **25-50 % below** the equianalgesic dose
//! ([`REDUCTION_MIN_PERCENT`], [`REDUCTION_MAX_PERCENT`]); a prescription above the
//! equivalent less the smaller reduction is a soft finding in [`crate::check`].
//!
//! Practice varies widely (a measured oral:intrathecal morphine ratio was 12:1 against
//! the customary 300:1): convert conservatively.

use core::fmt;

use crate::drug::DrugId;
use crate::quantity::{MassRate, QuantityError, Rounding};

/// How an opioid is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// By mouth.
    Oral,
    /// Intravenous.
    Intravenous,
    /// Epidural.
    Epidural,
    /// Intrathecal.
    Intrathecal,
}

impl Route {
    /// `oral`, `iv`, `epidural` or `intrathecal`.
    pub const fn name(self) -> &'static str {
        match self {
            Route::Oral => "oral",
            Route::Intravenous => "iv",
            Route::Epidural => "epidural",
            Route::Intrathecal => "intrathecal",
        }
    }

    /// Parses `oral`, `iv` (or `intravenous`), `epidural`, `intrathecal` (or `it`).
    pub fn from_name(s: &str) -> Option<Route> {
        let s = s.trim();
        let is = |n: &str| s.eq_ignore_ascii_case(n);
        if is("oral") || is("po") {
            Some(Route::Oral)
        } else if is("iv") || is("intravenous") {
            Some(Route::Intravenous)
        } else if is("epidural") {
            Some(Route::Epidural)
        } else if is("intrathecal") || is("it") {
            Some(Route::Intrathecal)
        } else {
            None
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One row of the equianalgesic table: `dose × num / den` of this drug by this route is
/// the intrathecal morphine equivalent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    /// Drug.
    pub drug: DrugId,
    /// Route.
    pub route: Route,
    /// Numerator.
    pub num: u64,
    /// Denominator.
    pub den: u64,
    /// Where it comes from.
    pub source: &'static str,
}

/// The smallest customary reduction for incomplete cross-tolerance, percent (check:
/// opioid-rotation practice, 25-50 %).
pub const REDUCTION_MIN_PERCENT: u64 = 25;
/// The largest customary reduction, percent (check).
pub const REDUCTION_MAX_PERCENT: u64 = 50;

/// The equianalgesic table, in intrathecal morphine equivalents.
pub const TABLE: [Ratio; 10] = [
    Ratio {
        drug: DrugId::Morphine,
        route: Route::Intrathecal,
        num: 1,
        den: 1,
        source: "reference",
    },
    Ratio {
        drug: DrugId::Morphine,
        route: Route::Oral,
        num: 1,
        den: 300,
        source: "consensus: oral:IT 300:1 (Krames)",
    },
    Ratio {
        drug: DrugId::Morphine,
        route: Route::Intravenous,
        num: 1,
        den: 100,
        source: "consensus: IV:IT 100:1 (OpenAnesthesia, ISMP)",
    },
    Ratio {
        drug: DrugId::Morphine,
        route: Route::Epidural,
        num: 1,
        den: 10,
        source: "consensus: epidural:IT 10:1 (OpenAnesthesia)",
    },
    Ratio {
        drug: DrugId::Hydromorphone,
        route: Route::Intrathecal,
        num: 6,
        den: 1,
        source: "IT morphine:IT hydromorphone 6:1 (one protocol), check",
    },
    Ratio {
        drug: DrugId::Hydromorphone,
        route: Route::Intravenous,
        num: 6,
        den: 25,
        source: "hydromorphone IV:IT 1:0.04 (perioperative rule) with IT 6:1, check",
    },
    Ratio {
        drug: DrugId::Hydromorphone,
        route: Route::Epidural,
        num: 6,
        den: 5,
        source: "hydromorphone epidural:IT 0.2:0.04 (perioperative rule) with IT 6:1, check",
    },
    Ratio {
        drug: DrugId::Fentanyl,
        route: Route::Intravenous,
        num: 1,
        den: 1,
        source: "fentanyl IV 100 mcg = morphine IV 10 mg, with morphine IV:IT 100:1, check",
    },
    Ratio {
        drug: DrugId::Fentanyl,
        route: Route::Epidural,
        num: 100,
        den: 33,
        source: "fentanyl IV:epidural 100:33 (perioperative rule), check",
    },
    Ratio {
        drug: DrugId::Fentanyl,
        route: Route::Intrathecal,
        num: 25,
        den: 2,
        source: "fentanyl IV:IT 100:8 (perioperative rule, 6-10), check",
    },
];

/// The table row for a drug and route, `None` where no ratio was found (sufentanil,
/// oral forms other than morphine, non-opioids).
pub fn ratio(drug: DrugId, route: Route) -> Option<&'static Ratio> {
    TABLE.iter().find(|r| r.drug == drug && r.route == route)
}

/// Why a conversion cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertError {
    /// No ratio for this drug and route.
    NoRatio(DrugId, Route),
    /// Overflow.
    Quantity(QuantityError),
}

impl From<QuantityError> for ConvertError {
    fn from(e: QuantityError) -> Self {
        ConvertError::Quantity(e)
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvertError::NoRatio(d, r) => write!(
                f,
                "no equianalgesic ratio is known for {r} {d} (check); known: morphine \
                 oral/iv/epidural/intrathecal, hydromorphone iv/epidural/intrathecal, fentanyl \
                 iv/epidural/intrathecal"
            ),
            ConvertError::Quantity(e) => write!(f, "{e}"),
        }
    }
}

/// A conversion: the equianalgesic dose and the customary starting range below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conversion {
    /// The equianalgesic daily dose of the target.
    pub equivalent: MassRate,
    /// After the largest customary reduction (50 %).
    pub start_low: MassRate,
    /// After the smallest customary reduction (25 %): above this is a soft finding.
    pub start_high: MassRate,
    /// Source of the `from` ratio.
    pub from_source: &'static str,
    /// Source of the `to` ratio.
    pub to_source: &'static str,
}

/// Converts `dose` of `from` to `to`, through intrathecal morphine equivalents.
///
/// # Errors
/// [`ConvertError::NoRatio`] for a pair without a ratio; overflow.
pub fn convert(
    from: (DrugId, Route),
    dose: MassRate,
    to: (DrugId, Route),
) -> Result<Conversion, ConvertError> {
    let a = ratio(from.0, from.1).ok_or(ConvertError::NoRatio(from.0, from.1))?;
    let b = ratio(to.0, to.1).ok_or(ConvertError::NoRatio(to.0, to.1))?;
    // dose × a.num/a.den = IT morphine = target × b.num/b.den
    let num = a.num.checked_mul(b.den).ok_or(QuantityError::Overflow)?;
    let den = a.den.checked_mul(b.num).ok_or(QuantityError::Overflow)?;
    let equivalent = dose.scale(num, den, Rounding::Nearest)?;
    Ok(Conversion {
        equivalent,
        start_low: equivalent.scale(100 - REDUCTION_MAX_PERCENT, 100, Rounding::Down)?,
        start_high: equivalent.scale(100 - REDUCTION_MIN_PERCENT, 100, Rounding::Down)?,
        from_source: a.source,
        to_source: b.source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    extern crate std;
    use super::*;
    use std::string::ToString;

    fn q(s: &str) -> MassRate {
        s.parse().unwrap()
    }

    #[test]
    fn oral_morphine_to_intrathecal_morphine_rx_020() {
        // 300 mg/day oral ÷ 300 = 1 mg/day intrathecal; less 25-50 %: 0.5-0.75 mg/day.
        let c = convert(
            (DrugId::Morphine, Route::Oral),
            q("300 mg/day"),
            (DrugId::Morphine, Route::Intrathecal),
        )
        .unwrap();
        assert_eq!(c.equivalent, q("1 mg/day"));
        assert_eq!(c.start_low, q("0.5 mg/day"));
        assert_eq!(c.start_high, q("0.75 mg/day"));
        // IV 100 : IT 1: 20 mg/day IV = 0.2 mg/day IT.
        let c = convert(
            (DrugId::Morphine, Route::Intravenous),
            q("20 mg/day"),
            (DrugId::Morphine, Route::Intrathecal),
        )
        .unwrap();
        assert_eq!(c.equivalent, q("200 mcg/day"));
    }

    #[test]
    fn intrathecal_rotation_by_the_table_rx_020() {
        // IT morphine 6 mg/day → IT hydromorphone 1 mg/day (6:1, check).
        let c = convert(
            (DrugId::Morphine, Route::Intrathecal),
            q("6 mg/day"),
            (DrugId::Hydromorphone, Route::Intrathecal),
        )
        .unwrap();
        assert_eq!(c.equivalent, q("1 mg/day"));
        assert!(c.to_source.ends_with("check"));
        // IT hydromorphone 1 mg/day → IT fentanyl: 6 mg morphine × 2/25 = 480 mcg.
        let c = convert(
            (DrugId::Hydromorphone, Route::Intrathecal),
            q("1 mg/day"),
            (DrugId::Fentanyl, Route::Intrathecal),
        )
        .unwrap();
        assert_eq!(c.equivalent, q("480 mcg/day"));
        // Sufentanil has no ratio: refused with what is known.
        let e = convert(
            (DrugId::Morphine, Route::Intrathecal),
            q("1 mg/day"),
            (DrugId::Sufentanil, Route::Intrathecal),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("no equianalgesic ratio is known for intrathecal sufentanil")
        );
    }
}
