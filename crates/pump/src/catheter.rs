//! The catheter record (PUMP-037): which catheter is implanted, how long it is after
//! trimming, and so how much fluid it holds.
//!
//! The dead volume — the fluid that reaches the CSF before any new fluid does — is the
//! pump's internal path (a constant of the pump model, [`crate::profile`]) plus the
//! catheter's internal volume, which depends on the catheter model, the length left
//! after the surgeon trims it, and the pump segment of a two-piece catheter. It changes
//! at every revision. A priming bolus computed from the wrong catheter volume puts drug
//! into the CSF at bolus speed (the 2013 priming-bolus recall, DOMAIN.md §3), so the
//! pump refuses to prime until a clinician has programmed this record, and priming and
//! bridging use it.
//!
//! The catalogue's figures are computed from each catheter's inner diameter
//! (volume per cm = π r² × 1 cm) and are marked `check`: a clinic confirms them against
//! the catheter's labelling, or enters the labelled figures as a custom model.

use core::fmt;

use serde::{Deserialize, Serialize};
use thecal_rx::Volume;

/// A catheter model the programmer can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatheterModel {
    /// Stable code carried in the record and the log (0 is a custom model).
    pub code: u16,
    /// Name in words.
    pub name: &'static str,
    /// Internal volume per centimetre of catheter.
    pub volume_per_cm: Volume,
    /// Internal volume of the pump segment (two-piece catheters), not trimmed.
    pub pump_segment: Volume,
    /// Where the figures come from.
    pub source: &'static str,
}

/// The code of a custom model: its figures are entered from the catheter's labelling.
pub const CUSTOM_MODEL: u16 = 0;

/// The catalogue of catheter models.
pub const CATALOGUE: [CatheterModel; 3] = [
    CatheterModel {
        code: 1,
        name: "two-piece intrathecal catheter, 0.53 mm lumen",
        // π × (0.0265 cm)² × 1 cm = 2.206e-3 mL = 2.2 µL per cm.
        volume_per_cm: Volume::from_nl(2_200),
        pump_segment: Volume::from_nl(20_000),
        source: "check: computed from a 0.53 mm inner diameter; pump segment 20 uL",
    },
    CatheterModel {
        code: 2,
        name: "one-piece intrathecal catheter, 0.60 mm lumen",
        // π × (0.030 cm)² × 1 cm = 2.83e-3 mL.
        volume_per_cm: Volume::from_nl(2_830),
        pump_segment: Volume::ZERO,
        source: "check: computed from a 0.60 mm inner diameter; one piece",
    },
    CatheterModel {
        code: 3,
        name: "trial catheter, 0.50 mm lumen",
        // π × (0.025 cm)² × 1 cm = 1.96e-3 mL.
        volume_per_cm: Volume::from_nl(1_960),
        pump_segment: Volume::ZERO,
        source: "check: computed from a 0.50 mm inner diameter",
    },
];

/// The catalogue entry with this code.
pub fn model(code: u16) -> Option<&'static CatheterModel> {
    CATALOGUE.iter().find(|m| m.code == code)
}

/// The catalogue entry with this name or code (as typed: `1`, or the name).
pub fn model_named(name: &str) -> Option<&'static CatheterModel> {
    let name = name.trim();
    CATALOGUE.iter().find(|m| {
        m.name.eq_ignore_ascii_case(name) || name.parse::<u16>().is_ok_and(|c| c == m.code)
    })
}

/// Shortest implanted catheter length accepted, mm.
pub const MIN_LENGTH_MM: u16 = 50;
/// Longest implanted catheter length accepted, mm.
pub const MAX_LENGTH_MM: u16 = 1_500;
/// Smallest internal volume per centimetre accepted.
pub const MIN_VOLUME_PER_CM: Volume = Volume::from_nl(500);
/// Largest internal volume per centimetre accepted.
pub const MAX_VOLUME_PER_CM: Volume = Volume::from_nl(10_000);
/// Largest pump-segment volume accepted.
pub const MAX_PUMP_SEGMENT: Volume = Volume::from_nl(100_000);

/// The implanted catheter as programmed by a clinician at implant and at each revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatheterRecord {
    /// Catalogue code ([`CUSTOM_MODEL`] for figures entered from the labelling).
    pub model: u16,
    /// Internal volume per centimetre.
    pub volume_per_cm: Volume,
    /// Implanted length after trimming, mm.
    pub length_mm: u16,
    /// Internal volume of the pump segment.
    pub pump_segment: Volume,
}

/// Why a catheter record was refused; each says what is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatheterError {
    /// The length is outside [`MIN_LENGTH_MM`]–[`MAX_LENGTH_MM`].
    Length,
    /// The volume per centimetre is outside its range.
    VolumePerCm,
    /// The pump segment is above [`MAX_PUMP_SEGMENT`].
    PumpSegment,
    /// The model code is not in the catalogue.
    UnknownModel,
    /// A catalogue model's figures differ from the catalogue.
    NotCatalogue,
}

impl CatheterError {
    /// What was wrong and what is allowed.
    pub const fn message(self) -> &'static str {
        match self {
            CatheterError::Length => {
                "catheter length after trimming must be 5 cm to 150 cm (50 mm to 1500 mm)"
            }
            CatheterError::VolumePerCm => "catheter internal volume must be 0.5 uL to 10 uL per cm",
            CatheterError::PumpSegment => "catheter pump segment must hold at most 100 uL",
            CatheterError::UnknownModel => {
                "unknown catheter model code; use a catalogue model or 0 (custom) with the \
                 labelled volume per cm and pump segment"
            }
            CatheterError::NotCatalogue => {
                "a catalogue catheter model's volume per cm and pump segment are the \
                 catalogue's; use model 0 (custom) for other figures"
            }
        }
    }
}

impl fmt::Display for CatheterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl CatheterRecord {
    /// A catalogue model trimmed to `length_mm`.
    pub const fn of_model(model: &CatheterModel, length_mm: u16) -> Self {
        CatheterRecord {
            model: model.code,
            volume_per_cm: model.volume_per_cm,
            length_mm,
            pump_segment: model.pump_segment,
        }
    }

    /// Checks every field against its range and the catalogue.
    ///
    /// # Errors
    /// The first field that is out of range.
    pub fn validate(&self) -> Result<(), CatheterError> {
        if !(MIN_LENGTH_MM..=MAX_LENGTH_MM).contains(&self.length_mm) {
            return Err(CatheterError::Length);
        }
        if self.volume_per_cm < MIN_VOLUME_PER_CM || self.volume_per_cm > MAX_VOLUME_PER_CM {
            return Err(CatheterError::VolumePerCm);
        }
        if self.pump_segment > MAX_PUMP_SEGMENT {
            return Err(CatheterError::PumpSegment);
        }
        if self.model != CUSTOM_MODEL {
            let m = model(self.model).ok_or(CatheterError::UnknownModel)?;
            if m.volume_per_cm != self.volume_per_cm || m.pump_segment != self.pump_segment {
                return Err(CatheterError::NotCatalogue);
            }
        }
        Ok(())
    }

    /// The catheter's internal volume: volume per cm × length + pump segment, rounded
    /// to the nearest nanolitre. Saturates (a validated record is far below the limit).
    pub fn volume(&self) -> Volume {
        // nL/cm × mm / 10, to nearest.
        let per_mm_x10 = self
            .volume_per_cm
            .nl()
            .saturating_mul(u64::from(self.length_mm));
        let trimmed = per_mm_x10.saturating_add(5).checked_div(10).unwrap_or(0);
        Volume::from_nl(trimmed).saturating_add(self.pump_segment)
    }

    /// The model's name (or "custom catheter").
    pub fn model_name(&self) -> &'static str {
        model_name(self.model)
    }
}

/// The name of the catalogue model with this code (or "custom catheter").
pub fn model_name(code: u16) -> &'static str {
    model(code).map_or("custom catheter", |m| m.name)
}

/// Why a typed length was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthError {
    /// No unit after the number.
    NoUnit,
    /// A unit other than cm or mm.
    Unit,
    /// Finer than a millimetre, or not a number.
    NotMillimetres,
    /// Above 6553.5 cm.
    TooLong,
}

impl LengthError {
    /// What was wrong.
    pub const fn message(self) -> &'static str {
        match self {
            LengthError::NoUnit => "no unit",
            LengthError::Unit => "the unit is cm or mm",
            LengthError::NotMillimetres => "not a length to the millimetre",
            LengthError::TooLong => "too long",
        }
    }
}

/// A length with its unit, "45 cm", "45.5 cm" or "450 mm", in whole millimetres.
///
/// # Errors
/// [`LengthError`]: what is wrong with the text.
pub fn parse_length_mm(s: &str) -> Result<u16, LengthError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or(LengthError::NoUnit)?;
    let (number, unit) = t.split_at_checked(split).ok_or(LengthError::NoUnit)?;
    let per_mm: u64 = match unit.trim() {
        "cm" => 10,
        "mm" => 1,
        _ => return Err(LengthError::Unit),
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || (per_mm == 1 && !frac.is_empty()) || frac.len() > 1 {
        return Err(LengthError::NotMillimetres);
    }
    let whole: u64 = whole.parse().map_err(|_| LengthError::NotMillimetres)?;
    let tenth: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| LengthError::NotMillimetres)?
    };
    let mm = whole
        .checked_mul(per_mm)
        .and_then(|mm| mm.checked_add(tenth))
        .ok_or(LengthError::TooLong)?;
    u16::try_from(mm).map_err(|_| LengthError::TooLong)
}

/// A length in millimetres, written in centimetres ("45.0 cm").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Length(pub u16);

impl fmt::Display for Length {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} cm", self.0 / 10, self.0 % 10)
    }
}

/// A logged catheter record ([`crate::event::Event::CatheterSet`]) in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetWords {
    /// It replaced a recorded catheter.
    pub revision: bool,
    /// Catalogue code.
    pub model: u16,
    /// Length after trimming, mm.
    pub length_mm: u16,
    /// Internal volume.
    pub volume: Volume,
}

impl fmt::Display for SetWords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "catheter {}: {}, {} after trimming, holds {}",
            if self.revision { "revised" } else { "recorded" },
            model_name(self.model),
            Length(self.length_mm),
            self.volume
        )
    }
}

impl fmt::Display for CatheterRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {} after trimming, {} per cm, pump segment {}: holds {}",
            self.model_name(),
            Length(self.length_mm),
            self.volume_per_cm,
            self.pump_segment,
            self.volume()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catheter_volume_is_length_times_volume_per_cm_plus_segment_pump_037() {
        // 45 cm of 2.2 uL/cm = 99 uL, plus the 20 uL pump segment: 119 uL.
        let m = model(1).map(|m| CatheterRecord::of_model(m, 450));
        assert_eq!(m.map(|r| r.volume()), Some(Volume::from_nl(119_000)));
        // 90 cm: 198 uL + 20 uL = 218 uL.
        let m = model(1).map(|m| CatheterRecord::of_model(m, 900));
        assert_eq!(m.map(|r| r.volume()), Some(Volume::from_nl(218_000)));
        // 62.5 cm of 2.83 uL/cm = 176.875 uL, to the nearest nL.
        let m = model(2).map(|m| CatheterRecord::of_model(m, 625));
        assert_eq!(m.map(|r| r.volume()), Some(Volume::from_nl(176_875)));
    }

    #[test]
    fn out_of_range_records_are_refused_with_what_is_allowed_pump_037() {
        let good = CatheterRecord {
            model: CUSTOM_MODEL,
            volume_per_cm: Volume::from_nl(2_000),
            length_mm: 350,
            pump_segment: Volume::ZERO,
        };
        assert_eq!(good.validate(), Ok(()));
        let short = CatheterRecord {
            length_mm: 49,
            ..good
        };
        assert_eq!(short.validate(), Err(CatheterError::Length));
        assert!(CatheterError::Length.message().contains("5 cm to 150 cm"));
        let wide = CatheterRecord {
            volume_per_cm: Volume::from_nl(10_001),
            ..good
        };
        assert_eq!(wide.validate(), Err(CatheterError::VolumePerCm));
        let segment = CatheterRecord {
            pump_segment: Volume::from_nl(100_001),
            ..good
        };
        assert_eq!(segment.validate(), Err(CatheterError::PumpSegment));
        let unknown = CatheterRecord { model: 99, ..good };
        assert_eq!(unknown.validate(), Err(CatheterError::UnknownModel));
        // A catalogue code with other figures is refused: the figures must be the label's.
        let wrong = CatheterRecord { model: 1, ..good };
        assert_eq!(wrong.validate(), Err(CatheterError::NotCatalogue));
        assert_eq!(model_named("1").map(|m| m.code), Some(1));
        assert_eq!(parse_length_mm("45 cm"), Ok(450));
        assert_eq!(parse_length_mm(" 45.5cm"), Ok(455));
        assert_eq!(parse_length_mm("450 mm"), Ok(450));
        assert_eq!(parse_length_mm("45"), Err(LengthError::NoUnit));
        assert_eq!(parse_length_mm("45 in"), Err(LengthError::Unit));
        assert_eq!(
            parse_length_mm("45.25 cm"),
            Err(LengthError::NotMillimetres)
        );
        assert_eq!(
            parse_length_mm("450.5 mm"),
            Err(LengthError::NotMillimetres)
        );
        assert_eq!(parse_length_mm("6553.6 cm"), Err(LengthError::TooLong));
        assert_eq!(
            model_named("ONE-PIECE intrathecal catheter, 0.60 mm lumen").map(|m| m.code),
            Some(2)
        );
    }
}
