//! ISO 3166-1 alpha-2 country codes and ISO 639-1 language codes (the officially
//! assigned sets; the tests pin their sizes).

const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ \
BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ \
DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT \
GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY \
KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX \
MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS \
RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN \
TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

const LANGUAGES: &str = "aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co \
cr cs cu cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho \
hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la \
lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or \
os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg \
th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu";

/// The canonical (upper-case) code when `input` names a country, case-insensitively.
pub fn country_code(input: &str) -> Option<String> {
    let code = input.trim().to_ascii_uppercase();
    listed(COUNTRIES, &code).then_some(code)
}

/// The canonical (lower-case) code when `input` names a language, case-insensitively.
pub fn language_code(input: &str) -> Option<String> {
    let code = input.trim().to_ascii_lowercase();
    listed(LANGUAGES, &code).then_some(code)
}

/// Whether `code` is in `list`, two-letter codes each followed by one space (the
/// last by none): a step of three bytes, where splitting on whitespace looked at
/// every byte (a row's country was 1% of a load's writer time).
fn listed(list: &str, code: &str) -> bool {
    code.len() == 2
        && list
            .as_bytes()
            .chunks(3)
            .any(|entry| entry[..2] == *code.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_lists_are_complete_and_canonicalize() {
        assert_eq!(COUNTRIES.split_ascii_whitespace().count(), 249);
        assert_eq!(LANGUAGES.split_ascii_whitespace().count(), 183);
        for list in [COUNTRIES, LANGUAGES] {
            let codes = list.split_ascii_whitespace().count();
            assert_eq!(
                list.len(),
                codes * 3 - 1,
                "two letters and one space a code"
            );
            assert!(list.split_ascii_whitespace().all(|code| listed(list, code)));
        }
        assert!(!listed(COUNTRIES, "R "), "never across a code's end");
        assert_eq!(country_code("fr").as_deref(), Some("FR"));
        assert_eq!(country_code("XX"), None);
        assert_eq!(language_code("DE").as_deref(), Some("de"));
        assert_eq!(language_code("xx"), None);
    }
}
