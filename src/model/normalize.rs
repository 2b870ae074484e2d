//! Normalization of contact points: the forms identities are compared and indexed in.

use phonenumber::{Mode, country};

/// Channels whose identity values are phone numbers (normalized to E.164).
const PHONE_CHANNELS: [&str; 5] = ["phone", "whatsapp", "sms", "viber", "signal"];

pub fn is_phone_channel(channel: &str) -> bool {
    PHONE_CHANNELS.contains(&channel)
}

/// Lower-cases and validates an email address.
pub fn normalize_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    if email.len() > 254 || !email_address::EmailAddress::is_valid(&email) {
        return Err(format!("'{raw}' is not a valid email address"));
    }
    Ok(email)
}

/// A phone as typed plus its E.164 form when the number is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPhone {
    pub typed: String,
    pub e164: Option<String>,
}

/// Parses a phone with `default_country` for numbers without a `+` prefix. A number
/// that libphonenumber cannot validate is kept as typed (matched by its digits); input
/// that is not a phone number at all (letters, fewer than 3 or more than 17 digits) is
/// an error.
pub fn normalize_phone(raw: &str, default_country: country::Id) -> Result<NormalizedPhone, String> {
    let typed = raw.trim();
    let allowed = |c: char| c.is_ascii_digit() || " +-.()/".contains(c);
    let digit_count = typed.chars().filter(char::is_ascii_digit).count();
    if !typed.chars().all(allowed) || !(3..=17).contains(&digit_count) {
        return Err(format!(
            "'{raw}' is not a phone number (digits, spaces and + - . ( ) / only, 3 to 17 digits)"
        ));
    }
    let e164 = phonenumber::parse(Some(default_country), typed)
        .ok()
        .filter(fits_numbering_plan)
        .map(|number| number.format().mode(Mode::E164).to_string());
    Ok(NormalizedPhone {
        typed: typed.to_string(),
        e164,
    })
}

/// Whether a parsed number fits its country's numbering plan (the general pattern and
/// lengths). Cheaper than `phonenumber::is_valid`, which tries every number type's
/// patterns: across many countries those exceed phonenumber's shared cache of 100
/// compiled regexes, which then recompiles on almost every call (measured: 90% of an
/// import's time). The general pattern is one regex per country.
fn fits_numbering_plan(number: &phonenumber::PhoneNumber) -> bool {
    let national = number.national().to_string();
    phonenumber::metadata::DATABASE
        .by_code(&number.code().value())
        .and_then(|regions| {
            regions
                .first()
                .map(|meta| meta.descriptors().general().is_match(&national))
        })
        .unwrap_or(false)
}

/// The digit strings a phone is searched by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhoneForms {
    /// National digits with trunk prefix (`0612345678`), or the typed digits of a
    /// number that could not be parsed.
    pub national: String,
    /// International digits without `+` (`33612345678`) when known.
    pub international: Option<String>,
}

/// Digit forms of a stored phone: from its E.164 form when known, else from the digits
/// as typed (a typed leading `+` marks them as international).
pub fn phone_forms(typed: &str, e164: Option<&str>) -> PhoneForms {
    if let Some(number) = e164.and_then(|e| phonenumber::parse(None, e).ok()) {
        // Built from the metadata's national prefix rather than the national formatter:
        // the formatter runs a family of regexes per country, and phonenumber's shared
        // cache of 100 compiled regexes thrashes when many countries are indexed.
        let code = number.code().value();
        let prefix = phonenumber::metadata::DATABASE
            .by_code(&code)
            .and_then(|regions| {
                regions
                    .first()
                    .and_then(|m| m.national_prefix().map(str::to_string))
            })
            .unwrap_or_default();
        let nsn = number.national();
        let national = format!(
            "{prefix}{}{}",
            "0".repeat(usize::from(nsn.zeros())),
            nsn.value()
        );
        return PhoneForms {
            national,
            international: Some(format!(
                "{code}{}{}",
                "0".repeat(usize::from(nsn.zeros())),
                nsn.value()
            )),
        };
    }
    let digits = digits_of(typed);
    let international = typed.trim_start().starts_with('+').then(|| digits.clone());
    PhoneForms {
        national: digits,
        international,
    }
}

/// ASCII-folds and lower-cases one word; transliteration can split it into several
/// parts (`北京` → `bei`, `jing`).
pub fn fold_ascii(word: &str) -> Vec<String> {
    let ascii = if word.is_ascii() {
        word.to_ascii_lowercase()
    } else {
        deunicode::deunicode(word).to_ascii_lowercase()
    };
    ascii
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// The form names are compared in for `unique_name`: case- and accent-insensitive,
/// punctuation and spacing ignored (`Hélène  Dupont` = `helene dupont`).
pub fn name_key(name: &str) -> String {
    fold_ascii(name).join(" ")
}

pub(crate) fn digits_of(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// `(channel, normalized value)`: the unit of identity uniqueness, encoded as one
/// string key (`channel` + U+001F + value) for the redb index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdentityKey(String);

impl IdentityKey {
    pub fn new(channel: &str, normalized_value: &str) -> Self {
        IdentityKey(format!("{channel}\u{1f}{normalized_value}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn channel(&self) -> &str {
        self.0.split('\u{1f}').next().unwrap_or_default()
    }

    /// The key of a phone: E.164 when known, else its digits.
    pub fn for_phone(channel: &str, phone: &NormalizedPhone) -> Self {
        match &phone.e164 {
            Some(e164) => IdentityKey::new(channel, e164),
            None => IdentityKey::new(channel, &digits_of(&phone.typed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalize_to_e164_with_default_country() {
        let p = normalize_phone("06 12 34 56 78", country::Id::FR).unwrap();
        assert_eq!(p.e164.as_deref(), Some("+33612345678"));
        let p = normalize_phone("+33 6 12 34 56 78", country::Id::US).unwrap();
        assert_eq!(p.e164.as_deref(), Some("+33612345678"));
        let forms = phone_forms(&p.typed, p.e164.as_deref());
        assert_eq!(forms.national, "0612345678");
        assert_eq!(forms.international.as_deref(), Some("33612345678"));
    }

    #[test]
    fn unparseable_phones_are_kept_and_garbage_rejected() {
        let p = normalize_phone("12345", country::Id::FR).unwrap();
        assert_eq!(p.e164, None);
        assert_eq!(phone_forms(&p.typed, None).national, "12345");
        assert!(normalize_phone("call me", country::Id::FR).is_err());
        assert!(normalize_phone("12", country::Id::FR).is_err());
    }

    #[test]
    fn emails_lowercase_and_validate() {
        assert_eq!(
            normalize_email(" A.B@Example.COM ").unwrap(),
            "a.b@example.com"
        );
        assert!(normalize_email("not-an-email").is_err());
    }
}
