//! R6: the phone format HighQ accepts (`{countrycode}${areacode}${number}`), as a pure function.

/// The characters that separate the parts of a phone number as people write it.
const SEPARATORS: [char; 7] = [' ', '-', '.', '/', '(', ')', '$'];

/// R6: turns each run of separators (space, `-`, `.`, `/`, `(`, `)`) into one `$`, drops leading
/// and trailing separators and keeps a leading `+`. A value that is already in HighQ's format
/// comes back unchanged, so formatting twice is the same as formatting once.
pub fn format_phone(raw: &str) -> String {
    let raw = raw.trim();
    let (plus, rest) = match raw.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", raw),
    };
    let parts: Vec<&str> = rest
        .split(|c| SEPARATORS.contains(&c))
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return String::new();
    }
    format!("{plus}{}", parts.join("$"))
}

#[cfg(test)]
mod tests {
    use super::format_phone;

    #[test]
    fn r06_dashes_become_dollar_signs() {
        assert_eq!(format_phone("1-555-123456"), "1$555$123456");
    }

    #[test]
    fn r06_a_leading_plus_is_kept_and_runs_of_separators_become_one_dollar() {
        assert_eq!(format_phone("+44 (20) 7946 0958"), "+44$20$7946$0958");
    }

    #[test]
    fn r06_a_number_without_separators_is_unchanged() {
        assert_eq!(format_phone("1555123456"), "1555123456");
    }

    #[test]
    fn r06_leading_and_trailing_separators_are_dropped() {
        assert_eq!(format_phone(" (1) 555.123/456 - "), "1$555$123$456");
        assert_eq!(format_phone("+ 1 555"), "+1$555");
    }

    #[test]
    fn r06_formatting_is_idempotent() {
        for raw in ["1-555-123456", "+44 (20) 7946 0958", "1555123456", "--"] {
            let once = format_phone(raw);
            assert_eq!(format_phone(&once), once, "{raw:?}");
        }
    }

    #[test]
    fn r06_a_value_of_only_separators_is_empty() {
        assert_eq!(format_phone(" -- () "), "");
        assert_eq!(format_phone("+"), "");
    }
}
