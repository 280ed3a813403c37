//! The values of the scenario's clock events (SIM-068): a signed shift of the pump's
//! clock ("-1 d", "+90 min") and a UTC offset ("+01:00", "-05:30").

use thecal_rx::Duration;

use crate::prescription_file::{FileError, quantity};

/// The largest clock shift a `set-clock` event may give: ten years either way.
pub const MAX_SHIFT: Duration = Duration::from_ms(3653 * 86_400_000);

fn err(field: &str, message: String) -> FileError {
    FileError {
        field: field.into(),
        message,
    }
}

/// A signed duration, ms: "-1 d" (back), "+2 h" or "2 h" (forward), at most
/// [`MAX_SHIFT`] either way.
///
/// # Errors
/// A [`FileError`] on `field` naming what is allowed.
pub fn shift_ms(field: &str, text: &str) -> Result<i64, FileError> {
    let t = text.trim();
    let (sign, rest) = match t.strip_prefix('-') {
        Some(r) => (-1i64, r),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let d: Duration = quantity(field, rest.trim())?;
    if d > MAX_SHIFT {
        return Err(err(
            field,
            format!(
                "'{text}' is too far; allowed: a duration of at most {MAX_SHIFT}, e.g. \"-1 d\" or \"+90 min\""
            ),
        ));
    }
    // At most 3653 days: well inside i64.
    Ok(sign * d.ms() as i64)
}

/// A UTC offset in minutes from "+HH:MM" or "-HH:MM" (−12:00 to +14:00, as the pump
/// takes it).
///
/// # Errors
/// A [`FileError`] on `field` naming what is allowed.
pub fn offset_minutes(field: &str, text: &str) -> Result<i16, FileError> {
    let bad = || {
        err(
            field,
            format!(
                "'{text}' is not a UTC offset; allowed: \"+HH:MM\" or \"-HH:MM\" from -12:00 to +14:00, e.g. \"+01:00\""
            ),
        )
    };
    let t = text.trim();
    let (sign, rest) = match (t.strip_prefix('+'), t.strip_prefix('-')) {
        (Some(r), _) => (1i16, r),
        (_, Some(r)) => (-1, r),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i16 = h.parse().map_err(|_| bad())?;
    let m: i16 = m.parse().map_err(|_| bad())?;
    if m >= 60 {
        return Err(bad());
    }
    let total = sign * (h * 60 + m);
    if !(-720..=840).contains(&total) {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_and_offsets_parse_by_hand_sim_068() {
        assert_eq!(shift_ms("s", "-1 d").unwrap(), -86_400_000);
        assert_eq!(shift_ms("s", "+90 min").unwrap(), 5_400_000);
        assert_eq!(shift_ms("s", "2 h").unwrap(), 7_200_000);
        assert_eq!(shift_ms("s", "0 s").unwrap(), 0);
        assert!(
            shift_ms("s", "-4000 d")
                .unwrap_err()
                .message
                .contains("at most")
        );
        assert!(shift_ms("s", "-1 parsec").is_err());
        assert_eq!(offset_minutes("o", "+01:00").unwrap(), 60);
        assert_eq!(offset_minutes("o", "-05:30").unwrap(), -330);
        assert_eq!(offset_minutes("o", "+14:00").unwrap(), 840);
        assert_eq!(offset_minutes("o", "-12:00").unwrap(), -720);
        for bad in ["01:00", "+1:00", "+14:15", "-12:30", "+01:60", "+aa:00", ""] {
            let e = offset_minutes("event[0].offset", bad).unwrap_err();
            assert_eq!(e.field, "event[0].offset", "{bad}");
            assert!(e.message.contains("-12:00 to +14:00"), "{bad}");
        }
    }
}
