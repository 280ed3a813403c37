//! Integer quantities in one canonical unit each, with checked arithmetic and
//! parsing/printing in clinical units.
//!
//! | quantity | type | canonical unit | accepted units |
//! |---|---|---|---|
//! | volume | [`Volume`] | nL | nL, uL (µL, μL, mcL), mL, L |
//! | drug mass | [`Mass`] | ng | ng, mcg (ug, µg, μg), mg, g |
//! | concentration | [`Concentration`] | ng/mL | mass / volume, e.g. `2000 mcg/mL`, `25 mg/mL` |
//! | flow | [`Flow`] | nL/day | volume / time, e.g. `0.048 mL/day`, `10 uL/h` |
//! | dose rate | [`MassRate`] | ng/day | mass / time, e.g. `19.2 mcg/day`, `15 mg/day` |
//! | duration | [`Duration`] | ms | ms, s, min, h, d (day, days), wk (week, weeks) |
//! | monotonic time | [`Instant`] | ms since an arbitrary origin | — |
//!
//! Units are matched case-insensitively (`ml`, `ML` and `mL` are one unit); a space
//! between number and unit is optional. Printing uses `mcg`, never `µg`, because a
//! hand-written `µ` is read as `m` (ISMP list of error-prone abbreviations).
//!
//! **Rounding rule.** Conversions between quantities (dose ↔ flow, flow × time) are
//! computed exactly in 128-bit integers and then rounded by an explicit [`Rounding`]:
//! the default is to nearest with ties away from zero; functions that must not
//! overstate (delivered volume) or understate (time until a limit) say which way
//! they round. Parsing never rounds: a value finer than the canonical unit is an
//! error ([`ParseErrorKind::TooPrecise`]).
//!
//! This module never panics: every operation that could overflow returns an error.

use core::fmt;
use core::str::FromStr;

/// Nanolitres in one millilitre.
pub const NL_PER_ML: u64 = 1_000_000;
/// Nanograms in one milligram.
pub const NG_PER_MG: u64 = 1_000_000;
/// Milliseconds in one day.
pub const MS_PER_DAY: u64 = 86_400_000;
/// Milliseconds in one hour.
pub const MS_PER_HOUR: u64 = 3_600_000;
/// Milliseconds in one minute.
pub const MS_PER_MINUTE: u64 = 60_000;

/// Why an arithmetic operation on quantities failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityError {
    /// The result does not fit the canonical integer.
    Overflow,
    /// A subtraction would go below zero.
    Underflow,
    /// A division by a zero quantity (e.g. the flow needed at zero concentration).
    DivideByZero,
}

impl core::error::Error for QuantityError {}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuantityError::Overflow => "the result is too large to represent",
            QuantityError::Underflow => "the result would be negative",
            QuantityError::DivideByZero => "division by a zero quantity",
        })
    }
}

/// How a conversion rounds its exact rational result to an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rounding {
    /// Towards zero (floor, as every value is non-negative).
    Down,
    /// To nearest; a tie rounds up.
    #[default]
    Nearest,
    /// Away from zero (ceiling).
    Up,
}

/// `a * b / c` computed exactly in 128 bits and rounded as asked.
///
/// # Errors
/// [`QuantityError::DivideByZero`] when `c` is zero, [`QuantityError::Overflow`] when
/// the rounded result does not fit in a `u64`.
pub fn mul_div(a: u64, b: u64, c: u64, rounding: Rounding) -> Result<u64, QuantityError> {
    mul_div_inline(a, b, c, rounding)
}

/// [`mul_div`], inlined where it is called (the pump's stroke path): the 64-bit case in
/// line, the 128-bit one out of line.
///
/// # Errors
/// As [`mul_div`].
#[inline(always)]
pub fn mul_div_inline(a: u64, b: u64, c: u64, rounding: Rounding) -> Result<u64, QuantityError> {
    // The product fits 64 bits (nearly every clinical case), so no 128-bit division is
    // needed. Same result, same rounding.
    let product = a.checked_mul(b);
    if let (Some(quotient), Some(remainder)) = (
        product.and_then(|p| p.checked_div(c)),
        product.and_then(|p| p.checked_rem(c)),
    ) {
        let bump = match rounding {
            Rounding::Down => false,
            Rounding::Up => remainder != 0,
            Rounding::Nearest => remainder >= c.saturating_sub(remainder),
        };
        return if bump {
            quotient.checked_add(1).ok_or(QuantityError::Overflow)
        } else {
            Ok(quotient)
        };
    }
    mul_div_wide(a, b, c, rounding)
}

/// [`mul_div`] in 128 bits: a product beyond 64 bits, or a zero divisor.
#[inline(never)]
fn mul_div_wide(a: u64, b: u64, c: u64, rounding: Rounding) -> Result<u64, QuantityError> {
    if c == 0 {
        return Err(QuantityError::DivideByZero);
    }
    let product = u128::from(a)
        .checked_mul(u128::from(b))
        .ok_or(QuantityError::Overflow)?;
    let c = u128::from(c);
    let quotient = product.checked_div(c).ok_or(QuantityError::DivideByZero)?;
    let remainder = product.checked_rem(c).ok_or(QuantityError::DivideByZero)?;
    let bump = match rounding {
        Rounding::Down => false,
        Rounding::Up => remainder != 0,
        // remainder >= c - remainder  <=>  2·remainder >= c, without overflow.
        Rounding::Nearest => remainder >= c.saturating_sub(remainder),
    };
    let rounded = if bump {
        quotient.checked_add(1).ok_or(QuantityError::Overflow)?
    } else {
        quotient
    };
    u64::try_from(rounded).map_err(|_| QuantityError::Overflow)
}

/// The kind of quantity a string was expected to hold (used in parse errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A volume.
    Volume,
    /// A drug mass.
    Mass,
    /// A concentration (mass per volume).
    Concentration,
    /// A flow (volume per time).
    Flow,
    /// A dose rate (mass per time).
    MassRate,
    /// A duration.
    Duration,
}

impl Kind {
    /// A phrase naming the kind with examples and the accepted units.
    pub const fn expected(self) -> &'static str {
        match self {
            Kind::Volume => "a volume such as `250 uL` or `0.5 mL` (units: nL, uL, mL, L)",
            Kind::Mass => "a drug mass such as `50 mcg` or `1.5 mg` (units: ng, mcg/ug/µg, mg, g)",
            Kind::Concentration => {
                "a concentration such as `2000 mcg/mL` or `25 mg/mL` (mass unit / volume unit)"
            }
            Kind::Flow => {
                "a flow such as `0.048 mL/day` or `10 uL/h` (volume unit / min, h or day)"
            }
            Kind::MassRate => {
                "a dose rate such as `19.2 mcg/day` or `15 mg/day` (mass unit / h or day)"
            }
            Kind::Duration => "a duration such as `90 min`, `2 h` or `14 d` (ms, s, min, h, d, wk)",
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Kind::Volume => "volume",
            Kind::Mass => "mass",
            Kind::Concentration => "concentration",
            Kind::Flow => "flow",
            Kind::MassRate => "dose rate",
            Kind::Duration => "duration",
        }
    }
}

/// What was wrong with a quantity string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// Nothing but white space.
    Empty,
    /// A minus sign: no quantity here can be negative.
    Negative,
    /// The number part is not a plain decimal (digits, one optional point).
    BadNumber,
    /// A number without a unit.
    MissingUnit,
    /// A unit that is not in the accepted list.
    UnknownUnit,
    /// A known unit of another kind of quantity (e.g. `mL` where a dose was expected).
    WrongKind(Kind),
    /// More decimals than the canonical unit resolves (e.g. `0.0000001 mL`).
    TooPrecise,
    /// Too large for the canonical integer.
    Overflow,
}

/// A quantity string that could not be read, with what was expected instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    /// What was wrong.
    pub kind: ParseErrorKind,
    /// What kind of quantity was expected.
    pub expected: Kind,
}

impl core::error::Error for ParseError {}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ParseErrorKind::Empty => f.write_str("empty value")?,
            ParseErrorKind::Negative => f.write_str("negative values are not allowed")?,
            ParseErrorKind::BadNumber => f.write_str("not a decimal number")?,
            ParseErrorKind::MissingUnit => f.write_str("missing unit")?,
            ParseErrorKind::UnknownUnit => f.write_str("unknown unit")?,
            ParseErrorKind::WrongKind(found) => write!(f, "that is a {}", found.name())?,
            ParseErrorKind::TooPrecise => write!(
                f,
                "too many decimal places (the resolution of a {} is {})",
                self.expected.name(),
                resolution(self.expected)
            )?,
            ParseErrorKind::Overflow => f.write_str("value too large")?,
        }
        write!(f, "; expected {}", self.expected.expected())
    }
}

const fn resolution(kind: Kind) -> &'static str {
    match kind {
        Kind::Volume => "1 nL",
        Kind::Mass => "1 ng",
        Kind::Concentration => "1 ng/mL",
        Kind::Flow => "1 nL/day",
        Kind::MassRate => "1 ng/day",
        Kind::Duration => "1 ms",
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Mass(u64),
    Volume(u64),
    Time(u64),
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Reads one unit symbol; micro may be written `u`, `mc`, `µ` (U+00B5) or `μ` (U+03BC).
fn unit(symbol: &str) -> Option<Unit> {
    let s = symbol.trim();
    let micro = s
        .strip_prefix('µ')
        .or_else(|| s.strip_prefix('μ'))
        .or_else(|| s.strip_prefix("mc"))
        .or_else(|| s.strip_prefix("MC"))
        .or_else(|| s.strip_prefix("Mc"))
        .or_else(|| s.strip_prefix('u'))
        .or_else(|| s.strip_prefix('U'));
    if let Some(rest) = micro {
        if eq(rest, "g") {
            return Some(Unit::Mass(1_000));
        }
        if eq(rest, "l") {
            return Some(Unit::Volume(1_000));
        }
    }
    let found = if eq(s, "ng") {
        Unit::Mass(1)
    } else if eq(s, "mg") {
        Unit::Mass(NG_PER_MG)
    } else if eq(s, "g") {
        Unit::Mass(1_000_000_000)
    } else if eq(s, "nl") {
        Unit::Volume(1)
    } else if eq(s, "ml") {
        Unit::Volume(NL_PER_ML)
    } else if eq(s, "l") {
        Unit::Volume(1_000_000_000)
    } else if eq(s, "ms") {
        Unit::Time(1)
    } else if eq(s, "s") || eq(s, "sec") {
        Unit::Time(1_000)
    } else if eq(s, "min") {
        Unit::Time(MS_PER_MINUTE)
    } else if eq(s, "h") || eq(s, "hr") || eq(s, "hour") || eq(s, "hours") {
        Unit::Time(MS_PER_HOUR)
    } else if eq(s, "d") || eq(s, "day") || eq(s, "days") {
        Unit::Time(MS_PER_DAY)
    } else if eq(s, "wk") || eq(s, "week") || eq(s, "weeks") {
        Unit::Time(7 * MS_PER_DAY)
    } else {
        return None;
    };
    Some(found)
}

/// Splits `12.5 mcg/mL` into the exact decimal (mantissa, number of decimals) and the
/// unit text.
fn split_number(s: &str) -> Result<(u128, u32, &str), ParseErrorKind> {
    let s = s.trim();
    if s.is_empty() {
        return Err(ParseErrorKind::Empty);
    }
    if s.starts_with('-') || s.starts_with('−') {
        return Err(ParseErrorKind::Negative);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map_or(s.len(), |(i, _)| i);
    let (number, rest) = s.split_at(end);
    let mut mantissa: u128 = 0;
    let mut decimals: u32 = 0;
    let mut seen_point = false;
    let mut digits = 0usize;
    for c in number.chars() {
        if c == '.' {
            if seen_point {
                return Err(ParseErrorKind::BadNumber);
            }
            seen_point = true;
            continue;
        }
        let d = u128::from(c.to_digit(10).ok_or(ParseErrorKind::BadNumber)?);
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(d))
            .ok_or(ParseErrorKind::Overflow)?;
        digits = digits.saturating_add(1);
        if seen_point {
            decimals = decimals.checked_add(1).ok_or(ParseErrorKind::Overflow)?;
        }
    }
    if digits == 0 {
        return Err(ParseErrorKind::BadNumber);
    }
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(ParseErrorKind::MissingUnit);
    }
    Ok((mantissa, decimals, rest))
}

fn kind_of(num: Unit, den: Option<Unit>) -> Option<Kind> {
    Some(match (num, den) {
        (Unit::Volume(_), None) => Kind::Volume,
        (Unit::Mass(_), None) => Kind::Mass,
        (Unit::Time(_), None) => Kind::Duration,
        (Unit::Mass(_), Some(Unit::Volume(_))) => Kind::Concentration,
        (Unit::Volume(_), Some(Unit::Time(_))) => Kind::Flow,
        (Unit::Mass(_), Some(Unit::Time(_))) => Kind::MassRate,
        _ => return None,
    })
}

/// Parses `s` as a quantity of kind `expected` and returns it in the canonical unit.
fn parse_canonical(s: &str, expected: Kind) -> Result<u64, ParseError> {
    let err = |kind| ParseError { kind, expected };
    let (mantissa, decimals, unit_text) = split_number(s).map_err(err)?;
    let (num_text, den_text) = match unit_text.split_once('/') {
        Some((n, d)) => (n, Some(d)),
        None => (unit_text, None),
    };
    let num = unit(num_text).ok_or(err(ParseErrorKind::UnknownUnit))?;
    let den = match den_text {
        Some(d) => Some(unit(d).ok_or(err(ParseErrorKind::UnknownUnit))?),
        None => None,
    };
    let found = kind_of(num, den).ok_or(err(ParseErrorKind::UnknownUnit))?;
    if found != expected {
        return Err(err(ParseErrorKind::WrongKind(found)));
    }
    // value_canonical = mantissa / 10^decimals × factor_num / factor_den.
    let (factor_num, factor_den): (u128, u128) = match (num, den) {
        (Unit::Mass(m), Some(Unit::Volume(v))) => (
            u128::from(m).saturating_mul(u128::from(NL_PER_ML)),
            u128::from(v),
        ),
        (Unit::Volume(f) | Unit::Mass(f), Some(Unit::Time(t))) => (
            u128::from(f).saturating_mul(u128::from(MS_PER_DAY)),
            u128::from(t),
        ),
        (Unit::Volume(f) | Unit::Mass(f) | Unit::Time(f), _) => (u128::from(f), 1),
    };
    let scale = 10u128
        .checked_pow(decimals)
        .ok_or(err(ParseErrorKind::TooPrecise))?;
    let numerator = mantissa
        .checked_mul(factor_num)
        .ok_or(err(ParseErrorKind::Overflow))?;
    let denominator = scale
        .checked_mul(factor_den)
        .ok_or(err(ParseErrorKind::TooPrecise))?;
    if numerator.checked_rem(denominator) != Some(0) {
        return Err(err(ParseErrorKind::TooPrecise));
    }
    let value = numerator
        .checked_div(denominator)
        .ok_or(err(ParseErrorKind::TooPrecise))?;
    u64::try_from(value).map_err(|_| err(ParseErrorKind::Overflow))
}

/// Writes `value / 10^decimals` with trailing zeros trimmed, then ` unit`.
fn write_decimal(f: &mut fmt::Formatter<'_>, value: u64, decimals: u32, unit: &str) -> fmt::Result {
    let scale = 10u64.checked_pow(decimals).unwrap_or(1);
    let whole = value.checked_div(scale).unwrap_or(value);
    let mut frac = value.checked_rem(scale).unwrap_or(0);
    let mut width = decimals as usize;
    if frac == 0 {
        return write!(f, "{whole} {unit}");
    }
    while frac.checked_rem(10) == Some(0) {
        frac = frac.checked_div(10).unwrap_or(0);
        width = width.saturating_sub(1);
    }
    write!(f, "{whole}.{frac:0width$} {unit}")
}

macro_rules! quantity {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $unit:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub struct $name(u64);

        impl $name {
            /// Zero.
            pub const ZERO: Self = Self(0);
            /// The largest representable value.
            pub const MAX: Self = Self(u64::MAX);
            #[doc = concat!("From a count of the canonical unit (", $unit, ").")]
            pub const fn from_raw(raw: u64) -> Self {
                Self(raw)
            }
            #[doc = concat!("The count of the canonical unit (", $unit, ").")]
            pub const fn raw(self) -> u64 {
                self.0
            }
            /// `self + other`, or [`QuantityError::Overflow`].
            pub const fn checked_add(self, other: Self) -> Result<Self, QuantityError> {
                match self.0.checked_add(other.0) {
                    Some(v) => Ok(Self(v)),
                    None => Err(QuantityError::Overflow),
                }
            }
            /// `self - other`, or [`QuantityError::Underflow`].
            pub const fn checked_sub(self, other: Self) -> Result<Self, QuantityError> {
                match self.0.checked_sub(other.0) {
                    Some(v) => Ok(Self(v)),
                    None => Err(QuantityError::Underflow),
                }
            }
            /// `self - other`, or zero when `other` is larger.
            pub const fn saturating_sub(self, other: Self) -> Self {
                Self(self.0.saturating_sub(other.0))
            }
            /// `self + other`, or [`Self::MAX`].
            pub const fn saturating_add(self, other: Self) -> Self {
                Self(self.0.saturating_add(other.0))
            }
            /// `self × n`, or [`QuantityError::Overflow`].
            pub const fn checked_mul(self, n: u64) -> Result<Self, QuantityError> {
                match self.0.checked_mul(n) {
                    Some(v) => Ok(Self(v)),
                    None => Err(QuantityError::Overflow),
                }
            }
            /// `self × num / den`, rounded as asked.
            ///
            /// # Errors
            /// Division by zero or overflow.
            pub fn scale(self, num: u64, den: u64, rounding: Rounding) -> Result<Self, QuantityError> {
                mul_div(self.0, num, den, rounding).map(Self)
            }
            /// Whether this is zero.
            pub const fn is_zero(self) -> bool {
                self.0 == 0
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                parse_canonical(s, $kind).map(Self)
            }
        }
    };
}

quantity!(
    /// A volume of fluid, in nanolitres.
    Volume, Kind::Volume, "nL"
);
quantity!(
    /// A mass of drug, in nanograms.
    Mass, Kind::Mass, "ng"
);
quantity!(
    /// A drug concentration, in nanograms per millilitre.
    Concentration, Kind::Concentration, "ng/mL"
);
quantity!(
    /// A flow of fluid, in nanolitres per day.
    Flow, Kind::Flow, "nL/day"
);
quantity!(
    /// A dose rate (drug mass per time), in nanograms per day.
    MassRate, Kind::MassRate, "ng/day"
);
quantity!(
    /// A span of time, in milliseconds.
    Duration, Kind::Duration, "ms"
);

impl Volume {
    /// From whole millilitres (saturating: cannot overflow for any `u32`).
    pub const fn from_ml(ml: u32) -> Self {
        Self((ml as u64).saturating_mul(NL_PER_ML))
    }
    /// From whole microlitres.
    pub const fn from_ul(ul: u32) -> Self {
        Self((ul as u64).saturating_mul(1_000))
    }
    /// From nanolitres.
    pub const fn from_nl(nl: u64) -> Self {
        Self(nl)
    }
    /// In nanolitres.
    pub const fn nl(self) -> u64 {
        self.0
    }
    /// The signed difference `self − other` in nanolitres.
    ///
    /// # Errors
    /// Overflow when the difference does not fit an `i64`.
    pub fn signed_diff(self, other: Self) -> Result<i64, QuantityError> {
        let a = i128::from(self.0);
        let b = i128::from(other.0);
        let d = a.checked_sub(b).ok_or(QuantityError::Overflow)?;
        i64::try_from(d).map_err(|_| QuantityError::Overflow)
    }
}

impl Mass {
    /// From whole micrograms.
    pub const fn from_mcg(mcg: u32) -> Self {
        Self((mcg as u64).saturating_mul(1_000))
    }
    /// From whole milligrams.
    pub const fn from_mg(mg: u32) -> Self {
        Self((mg as u64).saturating_mul(NG_PER_MG))
    }
    /// In nanograms.
    pub const fn ng(self) -> u64 {
        self.0
    }
}

impl Concentration {
    /// From micrograms per millilitre.
    pub const fn from_mcg_per_ml(mcg: u32) -> Self {
        Self((mcg as u64).saturating_mul(1_000))
    }
    /// From milligrams per millilitre.
    pub const fn from_mg_per_ml(mg: u32) -> Self {
        Self((mg as u64).saturating_mul(NG_PER_MG))
    }
    /// In nanograms per millilitre.
    pub const fn ng_per_ml(self) -> u64 {
        self.0
    }
}

impl Flow {
    /// From microlitres per day.
    pub const fn from_ul_per_day(ul: u32) -> Self {
        Self((ul as u64).saturating_mul(1_000))
    }
    /// In nanolitres per day.
    pub const fn nl_per_day(self) -> u64 {
        self.0
    }
    /// The volume this flow moves in `d`.
    ///
    /// # Errors
    /// Overflow.
    pub fn volume_over(self, d: Duration, rounding: Rounding) -> Result<Volume, QuantityError> {
        mul_div(self.0, d.0, MS_PER_DAY, rounding).map(Volume)
    }
    /// The time this flow takes to move `v`; [`QuantityError::DivideByZero`] at zero flow.
    ///
    /// # Errors
    /// Division by zero or overflow.
    pub fn time_for(self, v: Volume, rounding: Rounding) -> Result<Duration, QuantityError> {
        mul_div(v.0, MS_PER_DAY, self.0, rounding).map(Duration)
    }
}

impl MassRate {
    /// From micrograms per day.
    pub const fn from_mcg_per_day(mcg: u32) -> Self {
        Self((mcg as u64).saturating_mul(1_000))
    }
    /// From milligrams per day.
    pub const fn from_mg_per_day(mg: u32) -> Self {
        Self((mg as u64).saturating_mul(NG_PER_MG))
    }
    /// In nanograms per day.
    pub const fn ng_per_day(self) -> u64 {
        self.0
    }
    /// The drug mass this rate delivers in `d`.
    ///
    /// # Errors
    /// Overflow.
    pub fn mass_over(self, d: Duration, rounding: Rounding) -> Result<Mass, QuantityError> {
        mul_div(self.0, d.0, MS_PER_DAY, rounding).map(Mass)
    }
}

impl Duration {
    /// From milliseconds.
    pub const fn from_ms(ms: u64) -> Self {
        Self(ms)
    }
    /// From whole seconds (saturating).
    pub const fn from_secs(s: u64) -> Self {
        Self(s.saturating_mul(1_000))
    }
    /// From whole minutes (saturating).
    pub const fn from_minutes(m: u64) -> Self {
        Self(m.saturating_mul(MS_PER_MINUTE))
    }
    /// From whole hours (saturating).
    pub const fn from_hours(h: u64) -> Self {
        Self(h.saturating_mul(MS_PER_HOUR))
    }
    /// From whole days (saturating).
    pub const fn from_days(d: u64) -> Self {
        Self(d.saturating_mul(MS_PER_DAY))
    }
    /// In milliseconds.
    pub const fn ms(self) -> u64 {
        self.0
    }
    /// Whole hours, rounded down.
    pub const fn whole_hours(self) -> u64 {
        self.0 / MS_PER_HOUR
    }
    /// Whole days, rounded down.
    pub const fn whole_days(self) -> u64 {
        self.0 / MS_PER_DAY
    }
}

/// A point on a monotonic clock, in milliseconds since an arbitrary origin (for the
/// implant: since its first power-on). Never goes backwards; wall-clock changes do
/// not move it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Self = Self(0);
    /// The latest representable instant ("never").
    pub const MAX: Self = Self(u64::MAX);
    /// From milliseconds since the origin.
    pub const fn from_ms(ms: u64) -> Self {
        Self(ms)
    }
    /// Milliseconds since the origin.
    pub const fn ms(self) -> u64 {
        self.0
    }
    /// `self + d`, saturating at [`Instant::MAX`].
    pub const fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.0))
    }
    /// `self - d`, saturating at the origin.
    pub const fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(d.0))
    }
    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T+{}", Duration(self.0))
    }
}

impl fmt::Display for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimal(f, self.0, 6, "mL")
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimal(f, self.0, 6, "mL/day")
    }
}

/// Masses of at least 1 mg print in mg, smaller ones in mcg.
fn write_mass(f: &mut fmt::Formatter<'_>, ng: u64, per: &str) -> fmt::Result {
    if ng >= NG_PER_MG {
        write_decimal(f, ng, 6, "mg")?;
    } else {
        write_decimal(f, ng, 3, "mcg")?;
    }
    f.write_str(per)
}

impl fmt::Display for Mass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_mass(f, self.0, "")
    }
}

impl fmt::Display for Concentration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_mass(f, self.0, "/mL")
    }
}

impl fmt::Display for MassRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_mass(f, self.0, "/day")
    }
}

impl fmt::Display for Duration {
    /// The largest unit that divides the value exactly: `14 d`, `3 h`, `90 min`, `1500 ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (MS_PER_DAY, "d"),
            (MS_PER_HOUR, "h"),
            (MS_PER_MINUTE, "min"),
            (1_000, "s"),
        ];
        if self.0 != 0 {
            for (size, name) in UNITS {
                if self.0.checked_rem(size) == Some(0) {
                    return write!(f, "{} {name}", self.0.checked_div(size).unwrap_or(0));
                }
            }
        }
        write!(f, "{} ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::arithmetic_side_effects)]
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;

    fn v(s: &str) -> Volume {
        s.parse().unwrap()
    }

    #[test]
    fn parses_clinical_units_rx_001() {
        assert_eq!(v("0.048 mL").nl(), 48_000);
        assert_eq!(v("250 uL").nl(), 250_000);
        assert_eq!(v("250µL").nl(), 250_000);
        assert_eq!(v("250 μL").nl(), 250_000);
        assert_eq!(v("250 mcL").nl(), 250_000);
        assert_eq!(v("40mL").nl(), 40_000_000);
        assert_eq!("0.048 mL/day".parse::<Flow>().unwrap().nl_per_day(), 48_000);
        assert_eq!("1 mL/h".parse::<Flow>().unwrap().nl_per_day(), 24_000_000);
        let c: Concentration = "2000 mcg/mL".parse().unwrap();
        assert_eq!(c.ng_per_ml(), 2_000_000);
        assert_eq!(
            "25 mg/mL".parse::<Concentration>().unwrap().ng_per_ml(),
            25_000_000
        );
        assert_eq!(
            "25mcg/mL".parse::<Concentration>().unwrap().ng_per_ml(),
            25_000
        );
        assert_eq!(
            "19.2 mcg/day".parse::<MassRate>().unwrap().ng_per_day(),
            19_200
        );
        assert_eq!("1.5 mg".parse::<Mass>().unwrap().ng(), 1_500_000);
        for micro in ["50 µg", "50 μg", "50 ug", "50 mcg", "50 MCG"] {
            assert_eq!(micro.parse::<Mass>().unwrap().ng(), 50_000, "{micro}");
        }
        assert_eq!("90 min".parse::<Duration>().unwrap().ms(), 5_400_000);
        assert_eq!("14 d".parse::<Duration>().unwrap(), Duration::from_days(14));
    }

    #[test]
    fn rejects_bad_strings_with_a_reason_rx_001() {
        let e = |s: &str| s.parse::<Volume>().unwrap_err().kind;
        assert_eq!(e(""), ParseErrorKind::Empty);
        assert_eq!(e("   "), ParseErrorKind::Empty);
        assert_eq!(e("-1 mL"), ParseErrorKind::Negative);
        assert_eq!(e("1..2 mL"), ParseErrorKind::BadNumber);
        assert_eq!(e("mL"), ParseErrorKind::BadNumber);
        assert_eq!(e("12"), ParseErrorKind::MissingUnit);
        assert_eq!(e("12 gallons"), ParseErrorKind::UnknownUnit);
        assert_eq!(e("12 mg"), ParseErrorKind::WrongKind(Kind::Mass));
        assert_eq!(e("0.0000001 mL"), ParseErrorKind::TooPrecise);
        assert_eq!(e("99999999999999999999999 mL"), ParseErrorKind::Overflow);
        assert_eq!(e("18446744073709551616 nL"), ParseErrorKind::Overflow);
        let msg = "12 gallons".parse::<Volume>().unwrap_err().to_string();
        assert!(
            msg.contains("unknown unit") && msg.contains("expected a volume"),
            "{msg}"
        );
        let msg = "1 mL/week".parse::<Flow>().unwrap_err().to_string();
        assert!(msg.contains("resolution of a flow is 1 nL/day"), "{msg}");
    }

    #[test]
    fn prints_clinical_units_rx_001() {
        assert_eq!(Volume::from_nl(48_000).to_string(), "0.048 mL");
        assert_eq!(Flow::from_raw(48_000).to_string(), "0.048 mL/day");
        assert_eq!(Concentration::from_mcg_per_ml(2000).to_string(), "2 mg/mL");
        assert_eq!(Concentration::from_mcg_per_ml(25).to_string(), "25 mcg/mL");
        assert_eq!(MassRate::from_raw(19_200).to_string(), "19.2 mcg/day");
        assert_eq!(MassRate::from_mg_per_day(22).to_string(), "22 mg/day");
        assert_eq!(Mass::from_raw(1_500_000).to_string(), "1.5 mg");
        assert_eq!(Duration::from_minutes(90).to_string(), "90 min");
        assert_eq!(Duration::ZERO.to_string(), "0 ms");
    }

    #[test]
    fn mul_div_rounds_as_documented_rx_001() {
        assert_eq!(mul_div(7, 1, 2, Rounding::Down), Ok(3));
        assert_eq!(mul_div(7, 1, 2, Rounding::Nearest), Ok(4));
        assert_eq!(mul_div(5, 1, 3, Rounding::Nearest), Ok(2));
        assert_eq!(mul_div(4, 1, 3, Rounding::Nearest), Ok(1));
        assert_eq!(mul_div(7, 1, 2, Rounding::Up), Ok(4));
        assert_eq!(mul_div(6, 1, 2, Rounding::Up), Ok(3));
        assert_eq!(
            mul_div(1, 1, 0, Rounding::Up),
            Err(QuantityError::DivideByZero)
        );
        assert_eq!(
            mul_div(u64::MAX, 2, 1, Rounding::Up),
            Err(QuantityError::Overflow)
        );
        assert_eq!(
            mul_div(u64::MAX, u64::MAX, u64::MAX, Rounding::Up),
            Ok(u64::MAX)
        );
    }

    proptest! {
        #[test]
        fn print_then_parse_round_trips_rx_001(raw in any::<u64>()) {
            prop_assert_eq!(Volume::from_raw(raw).to_string().parse::<Volume>(), Ok(Volume::from_raw(raw)));
            prop_assert_eq!(Mass::from_raw(raw).to_string().parse::<Mass>(), Ok(Mass::from_raw(raw)));
            prop_assert_eq!(Flow::from_raw(raw).to_string().parse::<Flow>(), Ok(Flow::from_raw(raw)));
            prop_assert_eq!(MassRate::from_raw(raw).to_string().parse::<MassRate>(), Ok(MassRate::from_raw(raw)));
            prop_assert_eq!(Duration::from_raw(raw).to_string().parse::<Duration>(), Ok(Duration::from_raw(raw)));
        }

        #[test]
        fn mul_div_matches_exact_128_bit_arithmetic_rx_001(a in any::<u64>(), b in any::<u64>(), c in 1u64..=u64::MAX, small in any::<bool>()) {
            // Exercise both the 64-bit fast path (small operands) and the 128-bit path.
            let (a, b) = if small { (a >> 33, b >> 33) } else { (a, b) };
            let exact = u128::from(a) * u128::from(b);
            let c128 = u128::from(c);
            let down = u64::try_from(exact / c128).map_err(|_| QuantityError::Overflow);
            let up = u64::try_from(exact.div_ceil(c128)).map_err(|_| QuantityError::Overflow);
            let rem = exact % c128;
            let near = u64::try_from(exact / c128 + u128::from(2 * rem >= c128)).map_err(|_| QuantityError::Overflow);
            prop_assert_eq!(mul_div(a, b, c, Rounding::Down), down);
            prop_assert_eq!(mul_div(a, b, c, Rounding::Up), up);
            prop_assert_eq!(mul_div(a, b, c, Rounding::Nearest), near);
            prop_assert_eq!(mul_div_inline(a, b, c, Rounding::Down), down);
            prop_assert_eq!(mul_div_inline(a, b, c, Rounding::Up), up);
            prop_assert_eq!(mul_div_inline(a, b, c, Rounding::Nearest), near);
        }

        #[test]
        fn concentration_round_trips_rx_001(raw in 0u64..=u64::MAX / 1_000_000) {
            let c = Concentration::from_raw(raw);
            prop_assert_eq!(c.to_string().parse::<Concentration>(), Ok(c));
        }

        #[test]
        fn parse_never_panics_rx_001(s in "\\PC{0,24}") {
            let _ = s.parse::<Volume>();
            let _ = s.parse::<Concentration>();
            let _ = s.parse::<Flow>();
        }
    }
}
