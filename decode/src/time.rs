//! Durations and wall-clock times: parsing what users type, formatting what we print. All
//! wall-clock times are UTC (a trace travels between machines; the local zone of the laptop
//! reading it says nothing about the server that wrote it).

use std::fmt::Write as _;

/// Parses `10us`, `1.5ms`, `2s`, `1m`, `3h` into ns. A number without a unit is refused
/// (the recorder once read it as seconds and analyze as nanoseconds), except `0`.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "expected a duration such as 10us, 1.5ms or 2s, found {s:?}"
        ));
    }
    let scale: f64 = match unit {
        "" if num.parse::<f64>() == Ok(0.0) => 1.0,
        "" => {
            return Err(format!(
                "duration {s:?} has no unit: write {num}ns, {num}us, {num}ms or {num}s"
            ));
        }
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => {
            return Err(format!(
                "unknown duration unit {unit:?} in {s:?}: use ns, us, ms, s, m or h"
            ));
        }
    };
    // Integers stay exact; fractions go through f64, exact to the ns for any real duration.
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(scale as u64)
            .ok_or_else(|| format!("duration {s:?} is too large"));
    }
    let v: f64 = num
        .parse()
        .map_err(|_| format!("expected a number in duration {s:?}"))?;
    let ns = (v * scale).round();
    if !(0.0..1.8e19).contains(&ns) {
        return Err(format!("duration {s:?} is too large"));
    }
    Ok(ns as u64)
}

/// [`parse_duration`] as a [`std::time::Duration`], for options such as `recorder --duration`.
pub fn parse_std_duration(s: &str) -> Result<std::time::Duration, String> {
    parse_duration(s).map(std::time::Duration::from_nanos)
}

/// A compact duration: `850ns`, `4.1us`, `12.3ms`, `2.5s`.
pub fn format_duration(ns: u64) -> String {
    let mut s = String::new();
    write_duration(&mut s, ns);
    s
}

pub fn write_duration(out: &mut String, ns: u64) {
    let (v, unit) = if ns < 1_000 {
        let _ = write!(out, "{ns}ns");
        return;
    } else if ns < 1_000_000 {
        (ns as f64 / 1e3, "us")
    } else if ns < 1_000_000_000 {
        (ns as f64 / 1e6, "ms")
    } else {
        (ns as f64 / 1e9, "s")
    };
    if v < 10.0 {
        let _ = write!(out, "{v:.1}{unit}");
    } else {
        let _ = write!(out, "{v:.0}{unit}");
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Splits Unix ns into (days, ns within the day).
fn split_day(unix_ns: i64) -> (i64, i64) {
    const DAY: i64 = 86_400_000_000_000;
    (unix_ns.div_euclid(DAY), unix_ns.rem_euclid(DAY))
}

/// `2026-01-01T00:00:01.123456789Z`.
pub fn write_iso(out: &mut String, unix_ns: i64) {
    let (days, in_day) = split_day(unix_ns);
    let (y, m, d) = civil_from_days(days);
    let secs = in_day / 1_000_000_000;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        in_day % 1_000_000_000
    );
}

pub fn iso(unix_ns: i64) -> String {
    let mut s = String::new();
    write_iso(&mut s, unix_ns);
    s
}

/// `12:00:01.123456` (time of day, UTC, µs), as strace -tt prints.
pub fn write_time_of_day(out: &mut String, unix_ns: i64) {
    let (_, in_day) = split_day(unix_ns);
    let secs = in_day / 1_000_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        in_day % 1_000_000_000 / 1000
    );
}

/// Parses a wall-clock time: `2026-01-01T12:00:01.5Z`, `2026-01-01 12:00:01`, or a time of day
/// `12:00:01[.frac]` on `default_day` (days since the epoch). Returns Unix ns; always UTC.
pub fn parse_wall(s: &str, default_day: i64) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (day, tod) = match s.find(['T', ' ']) {
        Some(i) => {
            let date = &s[..i];
            let mut p = date.splitn(3, '-');
            let y: i64 = p.next()?.parse().ok()?;
            let m: u32 = p.next()?.parse().ok()?;
            let d: u32 = p.next()?.parse().ok()?;
            if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
                return None;
            }
            (days_from_civil(y, m, d), &s[i + 1..])
        }
        None if s.contains(':') => (default_day, s),
        None => return None,
    };
    let (hms, frac) = match tod.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (tod, None),
    };
    let mut p = hms.split(':');
    let h: i64 = p.next()?.parse().ok()?;
    let m: i64 = p.next()?.parse().ok()?;
    let sec: i64 = p.next().map_or(Some(0), |x| x.parse().ok())?;
    if p.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let mut ns = 0i64;
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        ns = f.parse::<i64>().ok()? * 10i64.pow(9 - f.len() as u32);
    }
    Some(day * 86_400_000_000_000 + ((h * 60 + m) * 60 + sec) * 1_000_000_000 + ns)
}

/// Days since the epoch of a Unix ns time.
pub fn day_of(unix_ns: i64) -> i64 {
    split_day(unix_ns).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10us"), Ok(10_000));
        assert_eq!(parse_duration("1.5ms"), Ok(1_500_000));
        assert_eq!(
            parse_duration("7"),
            Err("duration \"7\" has no unit: write 7ns, 7us, 7ms or 7s".to_string())
        );
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("250ns"), Ok(250));
        assert_eq!(
            parse_std_duration("1.5s"),
            Ok(std::time::Duration::from_millis(1500))
        );
        assert_eq!(
            parse_std_duration("5m"),
            Ok(std::time::Duration::from_secs(300))
        );
        assert_eq!(parse_duration("2s"), Ok(2_000_000_000));
        assert!(parse_duration("2 parsecs").is_err());
        assert!(parse_duration("us").is_err());
        assert_eq!(format_duration(4_100), "4.1us");
        assert_eq!(format_duration(850), "850ns");
        assert_eq!(format_duration(12_300_000), "12ms");
    }

    #[test]
    fn wall_clock_round_trip() {
        let t = 1_767_225_600_123_456_789; // 2026-01-01T00:00:00.123456789Z
        assert_eq!(iso(t), "2026-01-01T00:00:00.123456789Z");
        assert_eq!(parse_wall("2026-01-01T00:00:00.123456789Z", 0), Some(t));
        let day = day_of(t);
        assert_eq!(parse_wall("00:00:00.123456789", day), Some(t));
        assert_eq!(parse_wall("2026-13-01T00:00:00", 0), None);
        assert_eq!(parse_wall("garbage", 0), None);
        let mut s = String::new();
        write_time_of_day(&mut s, t + 3_723_000_000_000);
        assert_eq!(s, "01:02:03.123456");
    }
}
