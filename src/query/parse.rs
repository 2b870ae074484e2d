//! Tokenizer and recursive-descent parser for the filter grammar (see the module doc).

use super::ast::{Comparison, Condition, Expr, Value};
use super::{FilterError, MAX_DEPTH};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Op(&'static str),
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
}

#[derive(Debug, Clone)]
struct Spanned {
    token: Token,
    position: usize,
}

fn tokenize(input: &str) -> Result<Vec<Spanned>, FilterError> {
    let mut tokens = Vec::new();
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let single = |token| Spanned {
            token,
            position: start,
        };
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                tokens.push(single(Token::Open));
                i += 1;
            }
            b')' => {
                tokens.push(single(Token::Close));
                i += 1;
            }
            b'[' => {
                tokens.push(single(Token::OpenList));
                i += 1;
            }
            b']' => {
                tokens.push(single(Token::CloseList));
                i += 1;
            }
            b',' => {
                tokens.push(single(Token::Comma));
                i += 1;
            }
            b'=' => {
                tokens.push(single(Token::Op("=")));
                i += 1;
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                tokens.push(single(Token::Op("!=")));
                i += 2;
            }
            b'>' | b'<' => {
                let with_eq = bytes.get(i + 1) == Some(&b'=');
                let op = match (c, with_eq) {
                    (b'>', true) => ">=",
                    (b'>', false) => ">",
                    (_, true) => "<=",
                    _ => "<",
                };
                tokens.push(single(Token::Op(op)));
                i += if with_eq { 2 } else { 1 };
            }
            b'"' | b'\'' => {
                let quote = c;
                let mut text = String::new();
                let mut j = i + 1;
                let mut closed = false;
                while j < bytes.len() {
                    let ch = input[j..].chars().next().expect("j is on a char boundary");
                    if ch == '\\' && j + 1 < bytes.len() {
                        let escaped = input[j + 1..].chars().next().expect("char boundary");
                        text.push(escaped);
                        j += 1 + escaped.len_utf8();
                    } else if ch as u32 == u32::from(quote) {
                        closed = true;
                        j += 1;
                        break;
                    } else {
                        text.push(ch);
                        j += ch.len_utf8();
                    }
                }
                if !closed {
                    return Err(FilterError::at(
                        start,
                        "unterminated quoted value: add the closing quote",
                    ));
                }
                tokens.push(Spanned {
                    token: Token::Quoted(text),
                    position: start,
                });
                i = j;
            }
            _ => {
                let mut j = i;
                while j < bytes.len() {
                    let ch = input[j..].chars().next().expect("char boundary");
                    if ch.is_whitespace() || "()[],=!<>\"'".contains(ch) {
                        break;
                    }
                    j += ch.len_utf8();
                }
                if j == i {
                    let ch = input[i..].chars().next().expect("char boundary");
                    return Err(FilterError::at(i, format!("unexpected character '{ch}'")));
                }
                tokens.push(Spanned {
                    token: Token::Word(input[i..j].to_string()),
                    position: start,
                });
                i = j;
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Spanned>,
    next: usize,
    end: usize,
}

fn is_keyword(word: &str, keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword)
}

const KEYWORDS: [&str; 9] = [
    "AND", "OR", "NOT", "IN", "EXISTS", "IS", "EMPTY", "CONTAINS", "TO",
];

impl Parser {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.next)
    }

    fn position(&self) -> usize {
        self.peek().map_or(self.end, |t| t.position)
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Spanned { token: Token::Word(w), .. }) if is_keyword(w, keyword))
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = self.peek_keyword(keyword);
        if found {
            self.next += 1;
        }
        found
    }

    fn describe_next(&self) -> String {
        match self.peek().map(|t| &t.token) {
            None => "the end of the filter".into(),
            Some(Token::Word(w)) | Some(Token::Quoted(w)) => format!("'{w}'"),
            Some(Token::Op(op)) => format!("'{op}'"),
            Some(Token::Open) => "'('".into(),
            Some(Token::Close) => "')'".into(),
            Some(Token::OpenList) => "'['".into(),
            Some(Token::CloseList) => "']'".into(),
            Some(Token::Comma) => "','".into(),
        }
    }

    fn expected(&self, what: &str) -> FilterError {
        FilterError::at(
            self.position(),
            format!("expected {what}, found {}", self.describe_next()),
        )
    }

    fn or(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut items = vec![self.and(depth)?];
        while self.eat_keyword("OR") {
            items.push(self.and(depth)?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut items = vec![self.unary(depth)?];
        while self.eat_keyword("AND") {
            items.push(self.unary(depth)?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, FilterError> {
        if depth >= MAX_DEPTH {
            return Err(FilterError::at(
                self.position(),
                format!("filter nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        if self.eat_keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if matches!(
            self.peek(),
            Some(Spanned {
                token: Token::Open,
                ..
            })
        ) {
            self.next += 1;
            let inner = self.or(depth + 1)?;
            match self.peek() {
                Some(Spanned {
                    token: Token::Close,
                    ..
                }) => {
                    self.next += 1;
                    return Ok(inner);
                }
                _ => return Err(self.expected("')' or AND/OR")),
            }
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Expr, FilterError> {
        let (field, field_position) = match self.peek() {
            Some(Spanned {
                token: Token::Word(w),
                position,
            }) if !KEYWORDS.iter().any(|k| is_keyword(w, k)) => (w.clone(), *position),
            _ => return Err(self.expected("a field name")),
        };
        self.next += 1;
        let condition = match self.peek().map(|t| t.token.clone()) {
            Some(Token::Op(op)) => {
                self.next += 1;
                let comparison = match op {
                    "=" => Comparison::Eq,
                    "!=" => Comparison::Ne,
                    ">" => Comparison::Gt,
                    ">=" => Comparison::Ge,
                    "<" => Comparison::Lt,
                    _ => Comparison::Le,
                };
                Condition::Compare(comparison, self.value()?)
            }
            Some(Token::Word(w)) if is_keyword(&w, "IN") => {
                self.next += 1;
                Condition::In(self.list()?)
            }
            Some(Token::Word(w)) if is_keyword(&w, "EXISTS") => {
                self.next += 1;
                Condition::Exists
            }
            Some(Token::Word(w)) if is_keyword(&w, "CONTAINS") => {
                self.next += 1;
                Condition::Contains(self.value()?)
            }
            Some(Token::Word(w)) if is_keyword(&w, "IS") => {
                self.next += 1;
                let negated = self.eat_keyword("NOT");
                if !self.eat_keyword("EMPTY") {
                    return Err(self.expected("EMPTY after IS"));
                }
                let condition = Expr::Condition {
                    field,
                    field_position,
                    condition: Condition::IsEmpty,
                };
                return Ok(if negated {
                    Expr::Not(Box::new(condition))
                } else {
                    condition
                });
            }
            Some(Token::Word(w)) if is_keyword(&w, "NOT") => {
                self.next += 1;
                let inner = if self.eat_keyword("IN") {
                    Condition::In(self.list()?)
                } else if self.eat_keyword("EXISTS") {
                    Condition::Exists
                } else if self.eat_keyword("CONTAINS") {
                    Condition::Contains(self.value()?)
                } else {
                    return Err(self.expected("IN, EXISTS or CONTAINS after NOT"));
                };
                return Ok(Expr::Not(Box::new(Expr::Condition {
                    field,
                    field_position,
                    condition: inner,
                })));
            }
            Some(Token::Word(_)) | Some(Token::Quoted(_)) => {
                let low = self.value()?;
                if !self.eat_keyword("TO") {
                    return Err(self.expected("TO in a range (field low TO high)"));
                }
                Condition::Range(low, self.value()?)
            }
            _ => {
                return Err(self.expected(
                    "an operator (=, !=, >, >=, <, <=, IN, NOT IN, EXISTS, IS EMPTY, CONTAINS, TO)",
                ));
            }
        };
        Ok(Expr::Condition {
            field,
            field_position,
            condition,
        })
    }

    fn value(&mut self) -> Result<Value, FilterError> {
        match self.peek().cloned() {
            Some(Spanned {
                token: Token::Quoted(text),
                position,
            }) => {
                self.next += 1;
                Ok(Value { text, position })
            }
            Some(Spanned {
                token: Token::Word(text),
                position,
            }) if !["AND", "OR"].iter().any(|k| is_keyword(&text, k)) => {
                self.next += 1;
                Ok(Value { text, position })
            }
            _ => Err(self.expected("a value")),
        }
    }

    fn list(&mut self) -> Result<Vec<Value>, FilterError> {
        if !matches!(
            self.peek(),
            Some(Spanned {
                token: Token::OpenList,
                ..
            })
        ) {
            return Err(self.expected("'[' to start a list"));
        }
        self.next += 1;
        let mut values = vec![self.value()?];
        loop {
            match self.peek().map(|t| &t.token) {
                Some(Token::Comma) => {
                    self.next += 1;
                    values.push(self.value()?);
                }
                Some(Token::CloseList) => {
                    self.next += 1;
                    return Ok(values);
                }
                _ => return Err(self.expected("',' or ']' in a list")),
            }
        }
    }
}

/// Parses a filter; an empty (or blank) filter is `None`.
pub fn parse(input: &str) -> Result<Option<Expr>, FilterError> {
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        end: input.len(),
    };
    let expr = parser.or(0)?;
    if parser.next < parser.tokens.len() {
        return Err(parser.expected("AND, OR or the end of the filter"));
    }
    Ok(Some(expr))
}
