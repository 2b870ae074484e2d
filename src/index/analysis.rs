//! Text analysis shared by indexing and querying: accent/case folding and the three
//! forms every searchable word is indexed in.
//!
//! Folding: words are split on anything not alphanumeric, transliterated to ASCII and
//! lower-cased (`Hélène` → `helene`, `Łukasz` → `lukasz`, `Straße` → `strasse`). A word
//! with a German umlaut is also indexed in its `ae`/`oe`/`ue` spelling, so `Müller` is
//! found by both `muller` and `mueller`. All folded words are ASCII, so byte offsets
//! are character offsets.
//!
//! Forms (tantivy's n-gram tokenizer puts every gram at position 0 and ignores word
//! boundaries, so the forms come from this module's own tokenizers, [`FormTokenizer`],
//! registered under [`WORDS`], [`SHORT_PREFIXES`] and [`TRIGRAMS`]; a document value
//! is a group's tag then its folded words joined by single spaces, [`tagged_words`]):
//! - **word**: the folded word (exact matches);
//! - **short prefix**: every prefix of the word up to [`SHORT_PREFIX`] bytes (edge
//!   grams);
//! - **trigram**: every 3-byte gram, at consecutive positions within a word and with a
//!   gap between words, so a substring of 4+ letters is an exact phrase query of its
//!   trigrams and never matches across words. The first [`WORD_START_LEN`] bytes of a
//!   word are also indexed as its **word start** (`^` and the bytes, at the position of
//!   its first trigram): a prefix of exactly that length is one term, and a longer one
//!   the phrase of its word start and its trigrams past it.
//!
//! A value starts with its group's **tag** ([`NAME_TAG`] …, one byte: name, email,
//! phone, the rest, handles) and every token cut from it starts with the same tag,
//! so a group's terms are its own in a field that several groups share (`Nhel` is a
//! name's prefix, `Ehel` an email's). See [`super::schema`] for which fields are
//! shared and why.
//!
//! Handles (whole emails and identity values, [`fold_handle`]) are one word each, so
//! a fragment typed across `.` or `@` is a phrase of their trigrams. The email
//! group's trigrams are of whole emails and also give each word inside an email its
//! start ([`RUN_START`]): an email's words ([`handle_words`]) are then found by
//! prefix and substring in the same trigrams as its fragments, and are not indexed
//! in trigrams a second time.
//!
//! A word written with a leading [`MARK`] is **marked**: it is indexed in every form
//! as the word without the mark, and its short prefixes and word start are indexed a
//! second time with the mark in front (`#33`, `#3361`). A query for the start of a
//! marked word looks those up, so it never meets an unmarked word. Phones mark their
//! international digit forms, so `+33 6 12` finds `33612…` and not a national number
//! that happens to start with the same digits.
//!
//! Why only short edge grams: indexing costs in proportion to tokens, and edge grams up
//! to 20 bytes were half of a contact's tokens; a word start adds one token a word,
//! and the lead of a longer prefix's phrase is as rare as a 4-letter edge gram.
//! Reading a longer prefix from the word dictionary instead was tried and dropped: an
//! email word carries a number (`smith2`), so `smit` opens thousands of words
//! (BENCHMARKS.md, "Fewer index forms"). International phone digits had edge grams of
//! their own up to 20 digits (28 MiB at 1M); marking them gives the same answers from
//! four tokens a phone instead of about eleven.
//!
//! Folded words never contain a space, so joining and splitting on spaces is exact.
//! Tokenizing inside tantivy's indexing threads (instead of handing it pre-tokenized
//! values, which tantivy's document store round-trips through JSON) halved the CPU
//! time of indexing a contact.

use tantivy::tokenizer::{TextAnalyzer, Token, TokenStream, TokenizerManager};

/// Longest prefix indexed as an edge gram; a longer one is found through its
/// [`word_start`].
pub const SHORT_PREFIX: usize = 3;
/// Bytes of a word start (see the module docs).
pub const WORD_START_LEN: usize = SHORT_PREFIX + 1;
/// Marks a word start in the trigram form; never part of a folded word or handle.
const WORD_START: char = '^';
/// Marks a word (see the module docs); never part of a folded word or handle.
pub const MARK: char = '#';
/// Marks the start of a word inside a handle after its first (`~dupo` in
/// `jean.dupont@…`), in the email group's trigrams: with the handle's own word
/// start (`^jean`), every word of the handle has its start, so the words of a
/// handle are found by prefix from its trigrams. Never part of a handle.
pub const RUN_START: char = '~';
/// Characters kept inside a handle (an email or identity value) besides letters and
/// digits, so a fragment such as `jean.dup` or `zielke@` matches contiguously.
pub const HANDLE_SEPARATORS: &str = "@._+-";
/// Shortest query word matched as a substring (API: "by substring from its third").
pub const MIN_SUBSTRING: usize = 3;
/// Group tags (see the module docs): upper case, so never a folded character.
pub const NAME_TAG: char = 'N';
/// The email group: its trigram form holds whole emails with their inner words'
/// starts ([`RUN_START`]).
pub const EMAIL_TAG: char = 'E';
pub const PHONE_TAG: char = 'P';
pub const OTHER_TAG: char = 'O';
pub const HANDLE_TAG: char = 'H';

/// The folded words of `text`, umlaut spellings included.
pub fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in raw_words(text) {
        // An ASCII word has one spelling and folds to its lower case whole; most
        // words are, and this skips the three allocations of the general path.
        if raw.is_ascii() {
            if !out.iter().any(|word| word.eq_ignore_ascii_case(raw)) {
                out.push(raw.to_ascii_lowercase());
            }
            continue;
        }
        for spelling in spellings(raw) {
            for part in fold(&spelling) {
                if !out.contains(&part) {
                    out.push(part);
                }
            }
        }
    }
    out
}

/// Splits text into raw words (runs of alphanumeric characters).
pub fn raw_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The spellings a raw word is known by: itself, and its `ae/oe/ue` form when it has
/// a German umlaut.
pub fn spellings(raw: &str) -> Vec<String> {
    let mut spellings = vec![raw.to_string()];
    if raw.contains(['ä', 'ö', 'ü', 'Ä', 'Ö', 'Ü']) {
        let expanded: String = raw
            .chars()
            .map(|c| match c {
                'ä' | 'Ä' => "ae".to_string(),
                'ö' | 'Ö' => "oe".to_string(),
                'ü' | 'Ü' => "ue".to_string(),
                other => other.to_string(),
            })
            .collect();
        spellings.push(expanded);
    }
    spellings
}

/// ASCII-folds and lower-cases one spelling (see [`crate::model::fold_ascii`]).
pub fn fold(spelling: &str) -> Vec<String> {
    crate::model::fold_ascii(spelling)
}

/// An email or identity value (or a typed fragment of one) folded whole: ASCII,
/// lower case, letters, digits and [`HANDLE_SEPARATORS`] only.
pub fn fold_handle(value: &str) -> String {
    let ascii = if value.is_ascii() {
        value.to_ascii_lowercase()
    } else {
        deunicode::deunicode(value).to_ascii_lowercase()
    };
    ascii
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || HANDLE_SEPARATORS.contains(*c))
        .collect()
}

/// Appends `lead` then `text` to `out`: the one form of word starts (`^`), marked
/// words (`#`) and inner word starts (`~`), shared by indexing and querying.
fn push_led(out: &mut String, lead: char, text: &str) {
    out.push(lead);
    out.push_str(text);
}

/// `text` led by a group's tag: a term of a form field.
pub fn tagged(tag: char, text: &str) -> String {
    led(tag, text)
}

/// The value of a form field: the group's tag, then its words joined by spaces.
pub fn tagged_words(tag: char, words: &[String]) -> String {
    let mut value = String::with_capacity(1 + words.iter().map(|w| w.len() + 1).sum::<usize>());
    value.push(tag);
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            value.push(' ');
        }
        value.push_str(word);
    }
    value
}

fn led(lead: char, text: &str) -> String {
    let mut token = String::with_capacity(1 + text.len());
    push_led(&mut token, lead, text);
    token
}

/// The word start token of a word whose first [`WORD_START_LEN`] bytes are `start`.
pub fn word_start(start: &str) -> String {
    led(WORD_START, start)
}

/// `text` with the [`MARK`] in front: a marked word as a document holds it, and the
/// marked short prefix or word start a query looks up (the word start of a marked
/// word is its first [`WORD_START_LEN`] bytes after the mark).
pub fn marked(text: &str) -> String {
    led(MARK, text)
}

/// The start token of a word inside a handle (see [`RUN_START`]).
pub fn run_start(start: &str) -> String {
    led(RUN_START, start)
}

/// The words of a folded handle (its runs of letters and digits), in order.
pub fn handle_words(handle: &str) -> impl Iterator<Item = &str> {
    handle
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Whether a word of at least [`WORD_START_LEN`] bytes starts at byte `at` of
/// `handle`, after another character (so not the handle's first word).
fn inner_run_start(handle: &str, at: usize) -> bool {
    let bytes = handle.as_bytes();
    at > 0
        && !bytes[at - 1].is_ascii_alphanumeric()
        && bytes
            .get(at..at + WORD_START_LEN)
            .is_some_and(|start| start.iter().all(u8::is_ascii_alphanumeric))
}

/// Every trigram of a word, in order.
pub fn trigrams(word: &str) -> impl Iterator<Item = &str> {
    (0..=word.len().saturating_sub(MIN_SUBSTRING))
        .filter(move |_| word.len() >= MIN_SUBSTRING)
        .map(move |i| &word[i..i + MIN_SUBSTRING])
}

/// Tokenizer name of the exact form.
pub const WORDS: &str = "contactd_words";
/// Tokenizer name of the short prefix form (up to [`SHORT_PREFIX`]).
pub const SHORT_PREFIXES: &str = "contactd_short_prefixes";
/// Tokenizer name of the trigram form (with the inner words' starts, [`RUN_START`],
/// in the email group's values).
pub const TRIGRAMS: &str = "contactd_trigrams";

/// Registers the form tokenizers; every opened or created index needs them.
pub fn register_tokenizers(manager: &TokenizerManager) {
    let forms = [
        (WORDS, Form::Words),
        (SHORT_PREFIXES, Form::Prefixes(SHORT_PREFIX)),
        (TRIGRAMS, Form::Trigrams),
    ];
    for (name, form) in forms {
        manager.register(name, TextAnalyzer::from(FormTokenizer { form }));
    }
}

#[derive(Debug, Clone, Copy)]
enum Form {
    Words,
    /// Prefixes up to this many bytes.
    Prefixes(usize),
    /// In the email group, also the start of every word inside a word after its
    /// first ([`RUN_START`]).
    Trigrams,
}

/// Splits a tagged value ([`tagged_words`]) into the tokens of one form, each led
/// by the value's tag.
#[derive(Debug, Clone)]
pub struct FormTokenizer {
    form: Form,
}

impl tantivy::tokenizer::Tokenizer for FormTokenizer {
    type TokenStream<'a> = FormStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> FormStream<'a> {
        // The tag is one ASCII byte; an empty value has no tokens.
        let (tag, words) = match text.chars().next() {
            Some(tag) => (tag, &text[tag.len_utf8()..]),
            None => (NAME_TAG, ""),
        };
        FormStream {
            form: self.form,
            tag,
            run_starts: tag == EMAIL_TAG,
            words: words.split(' '),
            word: "",
            word_index: 0,
            next: 0,
            trigram_base: 0,
            word_start_due: false,
            word_marked: false,
            marked_start_due: false,
            run_start_done: false,
            token: Token::default(),
        }
    }
}

pub struct FormStream<'a> {
    form: Form,
    /// The value's group tag, first byte of every token.
    tag: char,
    /// Whether trigrams also mark inner word starts (the email group).
    run_starts: bool,
    words: std::str::Split<'a, char>,
    /// The word being cut ("" before the first).
    word: &'a str,
    /// Position of the current word (exact and prefix forms), counted from 1.
    word_index: usize,
    /// Next prefix length, or next trigram start, within `word`.
    next: usize,
    /// Position of the current word's first trigram.
    trigram_base: usize,
    /// Whether the current word's start token is still to be emitted.
    word_start_due: bool,
    /// Whether the current word is marked (see the module docs).
    word_marked: bool,
    /// Whether the current word's marked start token is still to be emitted.
    marked_start_due: bool,
    /// Whether the run start at `next` was emitted (handle trigrams).
    run_start_done: bool,
    token: Token,
}

impl FormStream<'_> {
    /// Moves to the next non-empty word; false at the end.
    fn next_word(&mut self) -> bool {
        for word in self.words.by_ref() {
            if word.is_empty() {
                continue;
            }
            if self.word_index > 0 {
                // One free position between words keeps phrases within a word.
                self.trigram_base += self.word.len().saturating_sub(2) + 1;
            }
            self.word_marked = word.starts_with(MARK);
            self.word = word.strip_prefix(MARK).unwrap_or(word);
            self.word_index += 1;
            self.next = match self.form {
                Form::Prefixes(_) => 1,
                Form::Words | Form::Trigrams => 0,
            };
            self.word_start_due =
                matches!(self.form, Form::Trigrams) && self.word.len() >= WORD_START_LEN;
            self.marked_start_due = self.word_start_due && self.word_marked;
            return true;
        }
        false
    }

    /// Emits the tag, `lead` then `text` (see [`push_led`]).
    fn emit_led(&mut self, lead: char, text: &str, position: usize) -> bool {
        self.token.text.clear();
        self.token.text.push(self.tag);
        push_led(&mut self.token.text, lead, text);
        self.token.position = position;
        true
    }

    /// Emits the tag then `text`.
    fn emit(&mut self, text: &str, position: usize) -> bool {
        self.token.text.clear();
        self.token.text.push(self.tag);
        self.token.text.push_str(text);
        self.token.position = position;
        true
    }
}

impl TokenStream for FormStream<'_> {
    fn advance(&mut self) -> bool {
        loop {
            match self.form {
                Form::Words => {
                    if !self.next_word() {
                        return false;
                    }
                    return self.emit(self.word, self.word_index - 1);
                }
                Form::Prefixes(max) => {
                    // Lengths 1..=count plain, then count+1..=2*count marked.
                    let count = self.word.len().min(max);
                    let last = if self.word_marked { 2 * count } else { count };
                    if self.word_index > 0 && self.next <= last {
                        let length = self.next;
                        self.next += 1;
                        let position = self.word_index - 1;
                        if length > count {
                            return self.emit_led(MARK, &self.word[..length - count], position);
                        }
                        return self.emit(&self.word[..length], position);
                    }
                }
                Form::Trigrams => {
                    if self.marked_start_due {
                        self.marked_start_due = false;
                        return self.emit_led(
                            MARK,
                            &self.word[..WORD_START_LEN],
                            self.trigram_base,
                        );
                    }
                    if self.word_start_due {
                        self.word_start_due = false;
                        let start = &self.word[..WORD_START_LEN];
                        return self.emit_led(WORD_START, start, self.trigram_base);
                    }
                    if self.word_index > 0 && self.next + MIN_SUBSTRING <= self.word.len() {
                        let start = self.next;
                        let position = self.trigram_base + start;
                        if self.run_starts
                            && !self.run_start_done
                            && inner_run_start(self.word, start)
                        {
                            self.run_start_done = true;
                            let word = &self.word[start..start + WORD_START_LEN];
                            return self.emit_led(RUN_START, word, position);
                        }
                        self.run_start_done = false;
                        self.next += 1;
                        return self.emit(&self.word[start..start + MIN_SUBSTRING], position);
                    }
                }
            }
            if !self.next_word() {
                return false;
            }
        }
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_accents_case_and_special_letters() {
        assert_eq!(words("Hélène Dupont"), ["helene", "dupont"]);
        assert_eq!(words("Łukasz Müller"), ["lukasz", "muller", "mueller"]);
        assert_eq!(words("Straße ØRSTED"), ["strasse", "orsted"]);
        assert_eq!(
            words("helene.dupont@orange.fr"),
            ["helene", "dupont", "orange", "fr"]
        );
    }

    #[test]
    fn handles_are_folded_whole() {
        assert_eq!(
            fold_handle("Hélène.Dupont+CRM@Orange.fr"),
            "helene.dupont+crm@orange.fr"
        );
        assert_eq!(fold_handle("@Quokka_Fan!"), "@quokka_fan");
    }

    /// The tokens of `text` in `tag`'s group, each checked to start with the tag
    /// and given without it.
    fn tagged_tokens(name: &str, tag: char, text: &str) -> Vec<(String, usize)> {
        let manager = TokenizerManager::default();
        register_tokenizers(&manager);
        let mut analyzer = manager.get(name).expect("registered");
        let value = tagged(tag, text);
        let mut stream = analyzer.token_stream(&value);
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            let untagged = token.text.strip_prefix(tag).expect("led by the tag");
            out.push((untagged.to_string(), token.position));
        }
        out
    }

    fn tokens(name: &str, text: &str) -> Vec<(String, usize)> {
        tagged_tokens(name, NAME_TAG, text)
    }

    #[test]
    fn values_are_tagged_words_and_an_empty_value_has_no_tokens() {
        let words = ["ab".to_string(), "cd".to_string()];
        assert_eq!(tagged_words(PHONE_TAG, &words), "Pab cd");
        assert_eq!(tagged_words(PHONE_TAG, &[]), "P");
        assert!(tokens(WORDS, "").is_empty());
        let manager = TokenizerManager::default();
        register_tokenizers(&manager);
        let mut analyzer = manager.get(TRIGRAMS).expect("registered");
        assert!(analyzer.token_stream("").next().is_none());
    }

    fn pairs(expected: &[(&str, usize)]) -> Vec<(String, usize)> {
        expected.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    #[test]
    fn trigram_positions_do_not_cross_words() {
        let expected = [("^abcd", 0), ("abc", 0), ("bcd", 1), ("efg", 3), ("hij", 6)];
        assert_eq!(tokens(TRIGRAMS, "abcd efg xy hij"), pairs(&expected));
    }

    #[test]
    fn words_and_prefixes_take_the_word_position() {
        assert_eq!(tokens(WORDS, "ab cd"), pairs(&[("ab", 0), ("cd", 1)]));
        assert_eq!(
            tokens(SHORT_PREFIXES, "ab c"),
            pairs(&[("a", 0), ("ab", 0), ("c", 1)])
        );
        assert_eq!(
            tokens(SHORT_PREFIXES, "dupont"),
            pairs(&[("d", 0), ("du", 0), ("dup", 0)])
        );
        assert!(tokens(TRIGRAMS, "").is_empty());
    }

    /// A handle's trigrams run across its separators; each inner word of 4+ bytes
    /// has its start beside its first trigram, and the handle's own start is `^`.
    #[test]
    fn handle_trigrams_start_every_inner_word() {
        let starts: Vec<(String, usize)> =
            tagged_tokens(TRIGRAMS, EMAIL_TAG, "jo.dupont@gmail.com x_abcd")
                .into_iter()
                .filter(|(token, _)| {
                    !token[..1]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || HANDLE_SEPARATORS.contains(c))
                })
                .collect();
        assert_eq!(
            starts,
            pairs(&[
                ("^jo.d", 0),
                ("~dupo", 3),
                ("~gmai", 10),
                ("^x_ab", 18),
                ("~abcd", 20)
            ])
        );
        let grams: Vec<String> = tagged_tokens(TRIGRAMS, EMAIL_TAG, "a.bcd")
            .into_iter()
            .map(|(token, _)| token)
            .collect();
        assert_eq!(
            grams,
            ["^a.bc", "a.b", ".bc", "bcd"],
            "bcd is too short to start"
        );
        assert!(
            tagged_tokens(TRIGRAMS, HANDLE_TAG, "jo.dupont@gmail.com")
                .iter()
                .all(|(token, _)| !token.starts_with(RUN_START)),
            "only the email group's trigrams start inner words"
        );
        assert_eq!(
            handle_words("jo.dupont@gmail.com").collect::<Vec<_>>(),
            ["jo", "dupont", "gmail", "com"]
        );
    }

    /// A marked word is indexed as itself, plus its short prefixes and word start
    /// with the mark; an unmarked word has no marked tokens.
    #[test]
    fn marked_words_add_marked_prefixes_and_word_start() {
        let word = marked("33612");
        assert_eq!(
            tokens(WORDS, &format!("0612 {word}")),
            pairs(&[("0612", 0), ("33612", 1)])
        );
        assert_eq!(
            tokens(SHORT_PREFIXES, &format!("{word} 06")),
            pairs(&[
                ("3", 0),
                ("33", 0),
                ("336", 0),
                ("#3", 0),
                ("#33", 0),
                ("#336", 0),
                ("0", 1),
                ("06", 1)
            ])
        );
        let expected = [
            ("^0612", 0),
            ("061", 0),
            ("612", 1),
            ("#3361", 3),
            ("^3361", 3),
            ("336", 3),
            ("361", 4),
            ("612", 5),
        ];
        assert_eq!(tokens(TRIGRAMS, &format!("0612 {word}")), pairs(&expected));
        assert_eq!(tokens(TRIGRAMS, &marked("12")), pairs(&[]));
    }
}
