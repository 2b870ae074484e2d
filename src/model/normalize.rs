//! Normalization of contact points: the forms identities are compared and indexed in.

use phonenumber::country;

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
        .and_then(|number| e164_if_in_plan(&number));
    Ok(NormalizedPhone {
        typed: typed.to_string(),
        e164,
    })
}

/// The E.164 form of a parsed number that fits its country's numbering plan (the
/// general pattern and lengths). Cheaper than `phonenumber::is_valid`, which tries
/// every number type's patterns: across many countries those exceed phonenumber's
/// shared cache of 100 compiled regexes, which then recompiles on almost every call
/// (measured: 90% of an import's time). The general pattern is one regex per country.
/// The form is written here rather than by phonenumber's E.164 formatter, which looks
/// up the country's display format by regex first and then does not use it (over a
/// quarter of a load's phone parsing).
fn e164_if_in_plan(number: &phonenumber::PhoneNumber) -> Option<String> {
    let code = number.code().value();
    let national = number.national().to_string();
    let meta = phonenumber::metadata::DATABASE
        .by_code(&code)?
        .into_iter()
        .next()?;
    meta.descriptors()
        .general()
        .is_match(&national)
        .then(|| format!("+{code}{national}"))
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
    if let Some(forms) =
        e164.and_then(|e| canonical_phone_forms(e).or_else(|| parsed_phone_forms(e)))
    {
        return forms;
    }
    let digits = digits_of(typed);
    let international = typed.trim_start().starts_with('+').then(|| digits.clone());
    PhoneForms {
        national: digits,
        international,
    }
}

/// The forms of an E.164 value as phonenumber parses it.
fn parsed_phone_forms(e164: &str) -> Option<PhoneForms> {
    let number = phonenumber::parse(None, e164).ok()?;
    // Built from the metadata's national prefix rather than the national formatter:
    // the formatter runs a family of regexes per country, and phonenumber's shared
    // cache of 100 compiled regexes thrashes when many countries are indexed.
    let code = number.code().value();
    let prefix = trunk_prefix(code).unwrap_or_default();
    let nsn = number.national();
    // The national significant number with its leading zeros (Italy's `06…`).
    let national_number = format!("{}{}", "0".repeat(usize::from(nsn.zeros())), nsn.value());
    Some(PhoneForms {
        national: format!("{prefix}{national_number}"),
        international: Some(format!("{code}{national_number}")),
    })
}

/// The national (trunk) prefix dialled before a national number of country calling
/// code `code` (`0` for 33, empty where there is none), from the code's first region;
/// `None` when no country has that code.
fn trunk_prefix(code: u16) -> Option<&'static str> {
    let regions = phonenumber::metadata::DATABASE.by_code(&code)?;
    Some(regions.first()?.national_prefix().unwrap_or_default())
}

/// Lengths of a national significant number that phonenumber parses.
const NATIONAL_DIGITS: std::ops::RangeInclusive<usize> = 2..=17;

/// The forms of a canonical E.164 value (`+` and digits only, as the normalizer
/// writes `phone_e164`), split at its country code without parsing: parsing validated
/// the number against its country's patterns again, a twentieth of a rebuild's CPU.
/// Country codes are prefix-free, so the first of 1 to 3 leading digits that is one is
/// the code. `None` (the caller parses) for anything else.
fn canonical_phone_forms(e164: &str) -> Option<PhoneForms> {
    let digits = e164.strip_prefix('+')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    (1..=3).find_map(|code_len| {
        let (code, national) = digits.split_at_checked(code_len)?;
        if !NATIONAL_DIGITS.contains(&national.len()) || code.starts_with('0') {
            return None;
        }
        let prefix = trunk_prefix(code.parse().ok()?)?;
        Some(PhoneForms {
            national: format!("{prefix}{national}"),
            international: Some(digits.to_string()),
        })
    })
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

    /// Every example number in phonenumber's metadata, by region and number type:
    /// the region, its national prefix, its country code and the example's digits.
    fn example_numbers() -> Vec<(country::Id, String, u16, String)> {
        let mut examples = Vec::new();
        for region in phonenumber::metadata::DATABASE.iter() {
            let Ok(country) = region.id().parse::<country::Id>() else {
                continue;
            };
            let descriptors = region.descriptors();
            let kinds = [
                descriptors.fixed_line(),
                descriptors.mobile(),
                descriptors.toll_free(),
                descriptors.premium_rate(),
                descriptors.voip(),
                descriptors.personal_number(),
                descriptors.uan(),
            ];
            for example in kinds.into_iter().flatten().filter_map(|d| d.example()) {
                let prefix = region.national_prefix().unwrap_or_default().to_string();
                examples.push((country, prefix, region.country_code(), example.to_string()));
            }
        }
        examples
    }

    /// The E.164 form written here is phonenumber's own, for the example numbers of
    /// every region and number type in its metadata, typed nationally and
    /// internationally; and a number outside its plan has none.
    #[test]
    fn e164_forms_are_the_formatters() {
        let mut compared = 0;
        for (country, prefix, code, example) in example_numbers() {
            for typed in [format!("{prefix}{example}"), format!("+{code} {example}")] {
                let Ok(number) = phonenumber::parse(Some(country), &typed) else {
                    continue;
                };
                let formatted = number.format().mode(phonenumber::Mode::E164).to_string();
                match e164_if_in_plan(&number) {
                    Some(e164) => {
                        assert_eq!(e164, formatted, "{typed} in {country:?}");
                        compared += 1;
                    }
                    None => assert!(!phonenumber::is_valid(&number), "{typed}"),
                }
            }
        }
        assert!(compared > 800, "only {compared} numbers compared");
        let outside = phonenumber::parse(Some(country::Id::FR), "01 23").unwrap();
        assert_eq!(e164_if_in_plan(&outside), None);
    }

    /// The split at the country code gives what parsing gives, for the example
    /// numbers of every region and number type in phonenumber's metadata, typed
    /// nationally and normalized as a write does; except where parsing drops digits.
    #[test]
    fn canonical_phones_split_as_parsing_does() {
        let (mut compared, mut lost_digits) = (0, Vec::new());
        for (country, prefix, _, example) in example_numbers() {
            let typed = format!("{prefix}{example}");
            let Some(e164) = normalize_phone(&typed, country).ok().and_then(|p| p.e164) else {
                continue;
            };
            let canonical = canonical_phone_forms(&e164).expect("a normalized phone");
            let parsed = parsed_phone_forms(&e164).expect("a normalized phone parses");
            assert_eq!(canonical.international.as_deref(), Some(&e164[1..]));
            if parsed.international == canonical.international {
                assert_eq!(canonical, parsed, "{country:?} {typed} → {e164}");
            } else {
                // Parsing strips a national prefix from the front of the national
                // number even after a country code: Lithuania's `8` from its
                // 800 numbers. The split keeps every digit of the number.
                lost_digits.push(e164);
            }
            compared += 1;
        }
        assert!(compared > 500, "only {compared} example numbers compared");
        assert_eq!(lost_digits, ["+37080012345", "+37080123456"]);
        assert_eq!(canonical_phone_forms("+33 6 12"), None);
        assert_eq!(canonical_phone_forms("33612345678"), None);
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
