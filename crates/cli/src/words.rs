//! Plain words for people holding a remote or a programmer: pump times as a clock time
//! and how long from now ("14:35 (in 42 min)"), never as the pump's internal
//! "T+1796252375083 ms".

use chrono::{Local, TimeZone as _};

/// A wall-clock time (Unix ms) as local "HH:MM", with the day when it is not today, and
/// how far it is from `now_ms`: "14:35 (in 42 min)".
pub fn at_and_in(at_ms: u64, now_ms: u64) -> String {
    let clock = i64::try_from(at_ms)
        .ok()
        .and_then(|ms| Local.timestamp_millis_opt(ms).single())
        .zip(
            i64::try_from(now_ms)
                .ok()
                .and_then(|ms| Local.timestamp_millis_opt(ms).single()),
        )
        .map(|(at, now)| {
            if at.date_naive() == now.date_naive() {
                at.format("%H:%M").to_string()
            } else {
                at.format("%a %d %b %H:%M").to_string()
            }
        })
        .unwrap_or_else(|| "an unknown time".into());
    let rel = if at_ms <= now_ms {
        "now".to_string()
    } else {
        format!("in {}", span_words(at_ms - now_ms))
    };
    format!("{clock} ({rel})")
}

/// A span of time in words, rounded up to the minute: "42 min", "3 h 5 min", "2 days 4 h".
pub fn span_words(ms: u64) -> String {
    let minutes = ms.div_ceil(60_000);
    let (d, h, m) = (minutes / 1440, (minutes % 1440) / 60, minutes % 60);
    match (d, h, m) {
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!(
            "{d} day{}{}",
            if d == 1 { "" } else { "s" },
            if h > 0 {
                format!(" {h} h")
            } else {
                String::new()
            }
        ),
    }
}

/// Replaces every pump time in `text` ("T+N UNIT", the core's instants) with
/// [`at_and_in`], using `to_wall` (pump ms → Unix ms) and `now_ms` (Unix ms).
pub fn pump_times(text: &str, to_wall: impl Fn(u64) -> u64, now_ms: u64) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("T+") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let unit_part = after[digits..].strip_prefix(' ').unwrap_or("");
        let unit: String = unit_part
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect();
        let scale = match unit.as_str() {
            "d" => Some(86_400_000),
            "h" => Some(3_600_000),
            "min" => Some(60_000),
            "s" => Some(1_000),
            "ms" => Some(1),
            _ => None,
        };
        match (after[..digits].parse::<u64>(), scale) {
            (Ok(n), Some(scale)) if digits > 0 => {
                out.push_str(&at_and_in(to_wall(n.saturating_mul(scale)), now_ms));
                rest = &unit_part[unit.len()..];
            }
            _ => {
                out.push_str("T+");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_say_them_link_023() {
        assert_eq!(span_words(42 * 60_000), "42 min");
        assert_eq!(span_words(42 * 60_000 - 500), "42 min");
        assert_eq!(span_words(3 * 3_600_000), "3 h");
        assert_eq!(span_words(3 * 3_600_000 + 5 * 60_000), "3 h 5 min");
        assert_eq!(span_words(2 * 86_400_000 + 4 * 3_600_000), "2 days 4 h");
    }

    #[test]
    fn a_refused_bolus_says_when_the_next_is_possible_link_023() {
        // The pump's clock: pump time 1,000,000 ms is wall time `now`; the lockout ends
        // 42 minutes later in pump time.
        let now = Local
            .with_ymd_and_hms(2026, 12, 3, 13, 53, 0)
            .single()
            .unwrap()
            .timestamp_millis() as u64;
        let pump_now = 1_000_000u64;
        let until = pump_now + 42 * 60_000;
        let text = format!("too soon after the last bolus; the next is allowed at T+{until} ms");
        let words = pump_times(&text, |t| now + (t - pump_now), now);
        assert_eq!(
            words,
            "too soon after the last bolus; the next is allowed at 14:35 (in 42 min)"
        );
        assert!(!words.contains("T+"));
        // Other units, and text with no pump time, pass through.
        let w = pump_times("until T+17 min.", |t| now + t, now);
        assert_eq!(w, "until 14:10 (in 17 min).");
        assert_eq!(pump_times("no time here", |t| t, now), "no time here");
    }
}
