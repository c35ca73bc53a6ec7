//! R5: turning a Graph user into the target fields, with the fallbacks, limits and messages.

use compact_str::CompactString;

use super::SnapshotUser;
use super::model::UserFields;
use crate::domain::{Email, EmailError};

/// R5: first name, last name, phone and job title hold at most this many characters.
pub const MAX_FIELD_CHARS: usize = 512;

/// Cuts `text` to at most `max` characters, always on a character boundary. Returns whether it cut.
pub fn truncate_chars(text: &str, max: usize) -> (String, bool) {
    let (kept, cut) = first_chars(text, max);
    (kept.to_owned(), cut)
}

/// The first `max` characters of `text`, and whether any were left out.
fn first_chars(text: &str, max: usize) -> (&str, bool) {
    match text.char_indices().nth(max) {
        Some((byte_index, _)) => (&text[..byte_index], true),
        None => (text, false),
    }
}

/// A user's fields as they should be in the target, with any warnings about how they were derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DesiredFields {
    pub fields: UserFields,
    pub warnings: Vec<String>,
}

/// How many characters of an Entra value a message quotes.
const QUOTED_CHARS: usize = 80;

/// `text` quoted for a message; a long one is cut and its length said, so a report line does
/// not repeat a 10,000-character value.
pub(crate) fn quoted(text: &str) -> String {
    match text.char_indices().nth(QUOTED_CHARS) {
        Some((at, _)) => format!("{:?}… ({} characters)", &text[..at], text.chars().count()),
        None => format!("{text:?}"),
    }
}

/// Whether a character would show: not white space, a control or an invisible format
/// character (a zero-width space, a bidirectional override, the BOM).
pub(crate) fn shows(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};
    if c.is_ascii() {
        // No ASCII character is a format character: this is the whole test, without the table.
        return c.is_ascii_graphic();
    }
    !(c.is_whitespace() || c.is_control() || c.general_category() == GeneralCategory::Format)
}

/// `text` with every character that would not show (but a space) written as its `\u{…}`
/// escape, so a report shows what Entra holds: an address with a zero-width space or a
/// right-to-left override cannot pass for another. At most [`MAX_FIELD_CHARS`] are kept.
pub(crate) fn visible(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(MAX_FIELD_CHARS) {
        if shows(c) || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_unicode());
        }
    }
    out
}

/// The value, trimmed, unless nothing of it would show: empty, white space, or only invisible
/// characters (a name of zero-width spaces is no name).
pub(crate) fn non_blank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| v.chars().any(shows))
}

/// R5: `mail`, or the user principal name when `mail` is empty and the UPN is an email address.
pub(crate) fn usable_email(user: &SnapshotUser) -> Result<Email, String> {
    if let Some(mail) = non_blank(user.mail()) {
        return Email::parse(mail).map_err(|err| format!("no usable email: mail {err}"));
    }
    match non_blank(user.user_principal_name()) {
        Some(upn) => Email::parse(upn).map_err(|err| match err {
            EmailError::GuestPrincipalName(_) => format!(
                "no usable email: mail is empty and the user principal name {upn:?} is a guest \
                 (#EXT#) name, not a mailbox; set the user's mail attribute in Entra"
            ),
            _ => format!(
                "no usable email: mail is empty and the user principal name {upn:?} is not an \
                 email address; set the user's mail attribute in Entra"
            ),
        }),
        None => Err("no usable email: both mail and userPrincipalName are empty".to_owned()),
    }
}

fn limited(label: &str, value: &str, warnings: &mut Vec<String>) -> CompactString {
    let (kept, cut) = first_chars(value, MAX_FIELD_CHARS);
    if cut {
        warnings.push(format!(
            "{label} is {} characters long; cut to {MAX_FIELD_CHARS}",
            value.chars().count()
        ));
    }
    CompactString::from(kept)
}

/// R5: the target fields for `user`, or the reason the user cannot be synced.
pub(crate) fn desired_fields(user: &SnapshotUser) -> Result<DesiredFields, String> {
    let email = usable_email(user)?;
    let mut warnings = Vec::new();

    let given = non_blank(user.given_name());
    let surname = non_blank(user.surname());
    let (first, last) = match (given, surname) {
        (Some(first), Some(last)) => (first, last),
        _ => {
            let Some(display) = non_blank(user.display_name()) else {
                let missing = if given.is_none() && surname.is_none() {
                    "givenName and surname are"
                } else if given.is_none() {
                    "givenName is"
                } else {
                    "surname is"
                };
                return Err(format!(
                    "no usable name: {missing} empty and there is no displayName to fall back on"
                ));
            };
            let (first_word, rest) = match display.split_once(char::is_whitespace) {
                Some((first_word, rest)) => (first_word, rest.trim()),
                None => (display, ""),
            };
            let first = given.unwrap_or(first_word);
            let last = surname.unwrap_or(rest);
            warnings.push(format!(
                "{} empty in Entra; taken from displayName {}",
                match (given, surname) {
                    (None, None) => "givenName and surname are",
                    (None, Some(_)) => "givenName is",
                    _ => "surname is",
                },
                quoted(display)
            ));
            (first, last)
        }
    };

    let phone = user
        .phone()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| limited("business phone", p, &mut warnings));
    let job_title = non_blank(user.job_title()).map(|t| limited("job title", t, &mut warnings));

    Ok(DesiredFields {
        fields: UserFields {
            email,
            first_name: limited("first name", first, &mut warnings),
            last_name: limited("last name", last, &mut warnings),
            phone,
            job_title,
        },
        warnings,
    })
}

/// Whether [`desired_fields`] would give `synced` exactly, spelling included, and no warning:
/// told without building the fields or parsing the address again, as most users of a night
/// are unchanged (issue 13). False says nothing: the fields are then built in full.
pub(crate) fn unchanged_since(user: &SnapshotUser, synced: &UserFields) -> bool {
    // Nothing is cut (a value of at most MAX_FIELD_CHARS bytes has no more characters).
    let same = |entra: Option<&str>, synced: Option<&str>| {
        entra == synced
            && entra.is_none_or(|value| {
                value.len() <= MAX_FIELD_CHARS || !first_chars(value, MAX_FIELD_CHARS).1
            })
    };
    // An address spelled as the mirror's parses as it did: the mirror's was parsed from it.
    non_blank(user.mail()) == Some(synced.email.as_str())
        // Both names given, as they equal names: no fallback on displayName, so no warning.
        && same(non_blank(user.given_name()), Some(&synced.first_name))
        && same(non_blank(user.surname()), Some(&synced.last_name))
        && same(
            user.phone().map(str::trim).filter(|p| !p.is_empty()),
            synced.phone.as_deref(),
        )
        && same(non_blank(user.job_title()), synced.job_title.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::EntraUser;

    #[test]
    fn r05_names_of_invisible_characters_fall_back_to_the_display_name() {
        let user = EntraUser {
            given_name: Some("\u{200b}\u{200b}".to_owned()),
            surname: Some("\u{feff} ".to_owned()),
            display_name: Some("Jane Doe".to_owned()),
            mail: Some("jane@contoso.com".to_owned()),
            ..EntraUser::default()
        };
        let desired = desired_fields(&user.into()).unwrap();
        assert_eq!(
            (
                desired.fields.first_name.as_str(),
                desired.fields.last_name.as_str()
            ),
            ("Jane", "Doe")
        );
        assert_eq!(
            desired.warnings,
            ["givenName and surname are empty in Entra; taken from displayName \"Jane Doe\""]
        );
    }

    #[test]
    fn report_labels_show_invisible_characters_and_quote_long_values_briefly() {
        assert_eq!(
            visible("ali\u{200b}ce@x.com\u{202e} ok"),
            "ali\\u{200b}ce@x.com\\u{202e} ok"
        );
        assert_eq!(visible(&"x".repeat(600)).len(), MAX_FIELD_CHARS);
        assert_eq!(quoted("Jane Doe"), "\"Jane Doe\"");
        assert_eq!(
            quoted(&"D".repeat(10_000)),
            format!("\"{}\"… (10000 characters)", "D".repeat(80))
        );
    }

    /// A value Entra might hold for a field: clean, padded, of another case, blank, invisible,
    /// or longer than R5's limit.
    fn entra_text() -> impl proptest::strategy::Strategy<Value = Option<String>> {
        use proptest::prelude::*;
        proptest::option::of(prop_oneof![
            Just("Ann".to_owned()),
            Just(" Ann ".to_owned()),
            Just("ann".to_owned()),
            Just("".to_owned()),
            Just("\u{200b}".to_owned()),
            Just("Lee".to_owned()),
            Just("ann@contoso.com".to_owned()),
            Just(" ann@contoso.com".to_owned()),
            Just("Ann@contoso.com".to_owned()),
            Just("lee@contoso.com".to_owned()),
            Just("A".repeat(MAX_FIELD_CHARS + 1)),
            Just("é".repeat(MAX_FIELD_CHARS / 2 + 1)),
        ])
    }

    fn entra_user() -> impl proptest::strategy::Strategy<Value = EntraUser> {
        use proptest::prelude::*;
        (
            [entra_text(), entra_text(), entra_text(), entra_text()],
            [entra_text(), entra_text(), entra_text()],
        )
            .prop_map(
                |([given, surname, display, mail], [upn, phone, title])| EntraUser {
                    given_name: given,
                    surname,
                    display_name: display,
                    mail,
                    user_principal_name: upn,
                    business_phones: phone.into_iter().collect(),
                    job_title: title,
                    ..EntraUser::default()
                },
            )
    }

    /// Spelled alike, field by field (the planner's test for a change).
    fn spelled_alike(a: &UserFields, b: &UserFields) -> bool {
        a.email.as_str() == b.email.as_str()
            && a.first_name == b.first_name
            && a.last_name == b.last_name
            && a.phone == b.phone
            && a.job_title == b.job_title
    }

    proptest::proptest! {
        /// The short cut never disagrees with building the fields: when it says unchanged,
        /// building them gives the mirror's fields and no warning.
        #[test]
        fn unchanged_since_implies_desired_fields_are_the_synced_ones(
            user in entra_user(),
            before in entra_user(),
        ) {
            let user = SnapshotUser::from(user);
            if let Ok(synced) = desired_fields(&SnapshotUser::from(before)) {
                if unchanged_since(&user, &synced.fields) {
                    let desired = desired_fields(&user).expect("an unchanged user is valid");
                    proptest::prop_assert!(desired.warnings.is_empty());
                    proptest::prop_assert!(spelled_alike(&desired.fields, &synced.fields));
                }
            }
        }

        /// And it is taken whenever the address is `mail` and nothing needs a warning.
        #[test]
        fn unchanged_since_holds_for_a_user_synced_as_is(user in entra_user()) {
            let user = SnapshotUser::from(user);
            if let Ok(desired) = desired_fields(&user)
                && desired.warnings.is_empty()
                && non_blank(user.mail()).is_some()
            {
                proptest::prop_assert!(unchanged_since(&user, &desired.fields));
            }
        }
    }

    #[test]
    fn truncation_never_splits_a_character() {
        let text = "é".repeat(600);
        let (cut, was_cut) = truncate_chars(&text, MAX_FIELD_CHARS);
        assert!(was_cut);
        assert_eq!(cut.chars().count(), 512);
        assert_eq!(cut.len(), 1024);
        assert_eq!(truncate_chars("short", 512), ("short".to_owned(), false));
    }
}
