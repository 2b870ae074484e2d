//! Typing a parsed filter against the field catalog: every value is converted to its
//! field's type (times evaluated now), every operator checked against the field kind.

use chrono::{DateTime, Duration, Months, NaiveDate, TimeZone, Utc};

use super::FilterError;
use super::ast::{Comparison, Condition, Expr, Value};
use super::fields::{FieldKind, FieldRef, builtin_names, field_ref};
use crate::model::{
    CustomFieldDefs, FieldType, fold_ascii, name_key, normalize_email, normalize_phone,
};

/// When "now" is, and the zone plain dates and `today`/`yesterday` are read in.
#[derive(Debug, Clone, Copy)]
pub struct TimeContext {
    pub now: DateTime<Utc>,
    pub tz: chrono_tz::Tz,
    pub default_country: phonenumber::country::Id,
}

/// A value converted to its field's type. Times are half-open intervals: an instant
/// covers one millisecond, a plain date its whole day.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    Str(String),
    Num(f64),
    Bool(bool),
    Time {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResolvedCondition {
    Compare(Comparison, Typed),
    In(Vec<Typed>),
    Exists,
    IsEmpty,
    /// Folded words that must each match a word of the field partially (digits for
    /// phones).
    Contains(Vec<String>),
    Range(Typed, Typed),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResolvedExpr {
    And(Vec<ResolvedExpr>),
    Or(Vec<ResolvedExpr>),
    Not(Box<ResolvedExpr>),
    Condition {
        field: FieldRef,
        condition: ResolvedCondition,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub expr: ResolvedExpr,
    /// The filter names `status`: then deleted and merged contacts may match.
    pub names_status: bool,
}

pub fn resolve(
    expr: &Expr,
    defs: &CustomFieldDefs,
    time: &TimeContext,
) -> Result<Resolved, FilterError> {
    let mut names_status = false;
    let expr = resolve_expr(expr, defs, time, &mut names_status)?;
    Ok(Resolved { expr, names_status })
}

fn resolve_expr(
    expr: &Expr,
    defs: &CustomFieldDefs,
    time: &TimeContext,
    names_status: &mut bool,
) -> Result<ResolvedExpr, FilterError> {
    let all = |items: &[Expr], names_status: &mut bool| {
        items
            .iter()
            .map(|e| resolve_expr(e, defs, time, names_status))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match expr {
        Expr::And(items) => ResolvedExpr::And(all(items, names_status)?),
        Expr::Or(items) => ResolvedExpr::Or(all(items, names_status)?),
        Expr::Not(inner) => {
            ResolvedExpr::Not(Box::new(resolve_expr(inner, defs, time, names_status)?))
        }
        Expr::Condition {
            field,
            field_position,
            condition,
        } => {
            let field_ref = field_ref(field, defs).ok_or_else(|| {
                let known: Vec<&str> = builtin_names().collect();
                FilterError::at(*field_position, format!(
                    "unknown field '{field}': use one of {}, or custom.<key> of a defined custom field",
                    known.join(", ")
                ))
            })?;
            if field_ref == FieldRef::Builtin("status") {
                *names_status = true;
            }
            let condition = resolve_condition(&field_ref, condition, *field_position, time)?;
            ResolvedExpr::Condition {
                field: field_ref,
                condition,
            }
        }
    })
}

fn resolve_condition(
    field: &FieldRef,
    condition: &Condition,
    position: usize,
    time: &TimeContext,
) -> Result<ResolvedCondition, FilterError> {
    let kind = field.kind();
    let name = field.name();
    let ordered = matches!(kind, FieldKind::Number | FieldKind::Time);
    Ok(match condition {
        Condition::Compare(comparison, value) => {
            if !matches!(comparison, Comparison::Eq | Comparison::Ne) && !ordered {
                return Err(FilterError::at(
                    position,
                    format!(
                        "{name} cannot be compared with >, >=, < or <=: only number and time fields can"
                    ),
                ));
            }
            ResolvedCondition::Compare(*comparison, typed(field, value, time)?)
        }
        Condition::In(values) => ResolvedCondition::In(
            values
                .iter()
                .map(|v| typed(field, v, time))
                .collect::<Result<_, _>>()?,
        ),
        Condition::Exists => ResolvedCondition::Exists,
        Condition::IsEmpty => ResolvedCondition::IsEmpty,
        Condition::Contains(value) => {
            if kind != FieldKind::Text {
                return Err(FilterError::at(
                    position,
                    format!(
                        "CONTAINS works on text fields (name, email, phone, text custom fields), not on {name}"
                    ),
                ));
            }
            let words = if is_phone(field) {
                let digits: String = value.text.chars().filter(char::is_ascii_digit).collect();
                if digits.is_empty() {
                    return Err(FilterError::at(
                        value.position,
                        "a phone CONTAINS needs digits",
                    ));
                }
                vec![digits]
            } else {
                fold_ascii(&value.text)
            };
            if words.is_empty() {
                return Err(FilterError::at(
                    value.position,
                    "CONTAINS needs letters or digits",
                ));
            }
            ResolvedCondition::Contains(words)
        }
        Condition::Range(low, high) => {
            if !ordered {
                return Err(FilterError::at(
                    position,
                    format!("{name} cannot take a range (a TO b): only number and time fields can"),
                ));
            }
            ResolvedCondition::Range(typed(field, low, time)?, typed(field, high, time)?)
        }
    })
}

fn is_phone(field: &FieldRef) -> bool {
    matches!(
        field,
        FieldRef::Builtin("phone")
            | FieldRef::Custom {
                field_type: FieldType::Phone,
                ..
            }
    )
}

/// Converts one literal to the field's type, normalized as the index stores it.
fn typed(field: &FieldRef, value: &Value, time: &TimeContext) -> Result<Typed, FilterError> {
    let text = value.text.trim();
    let fail = |message: String| FilterError::at(value.position, message);
    let name = field.name();
    Ok(match field.kind() {
        FieldKind::Number => Typed::Num(
            text.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| {
                    fail(format!(
                        "{name} is a number field; '{text}' is not a number"
                    ))
                })?,
        ),
        FieldKind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" => Typed::Bool(true),
            "false" => Typed::Bool(false),
            _ => return Err(fail(format!("{name} is true or false, not '{text}'"))),
        },
        FieldKind::Time => {
            let (start, end) =
                parse_time_value(text, time).map_err(|m| fail(format!("{name}: {m}")))?;
            Typed::Time { start, end }
        }
        FieldKind::Keyword | FieldKind::List | FieldKind::Text => Typed::Str(match field {
            FieldRef::Builtin("country") => text.to_ascii_uppercase(),
            FieldRef::Builtin("language" | "tags" | "channel" | "last_interacted_channel") => {
                text.to_lowercase()
            }
            FieldRef::Builtin("status") => {
                let status = text.to_ascii_lowercase();
                if !["active", "deleted", "merged"].contains(&status.as_str()) {
                    return Err(fail(format!(
                        "status is active, deleted or merged, not '{text}'"
                    )));
                }
                status
            }
            FieldRef::Builtin("name") => name_key(text),
            FieldRef::Builtin("email")
            | FieldRef::Custom {
                field_type: FieldType::Email,
                ..
            } => normalize_email(text).unwrap_or_else(|_| text.to_lowercase()),
            _ if is_phone(field) => match normalize_phone(text, time.default_country) {
                Ok(phone) => phone
                    .e164
                    .unwrap_or_else(|| phone.typed.chars().filter(char::is_ascii_digit).collect()),
                Err(message) => return Err(fail(message)),
            },
            _ => text.to_string(),
        }),
    })
}

/// A time literal as a half-open interval `[start, end)`.
fn parse_time_value(
    text: &str,
    time: &TimeContext,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let out_of_range = || format!("'{text}' is out of the range of times");
    let instant = |t: DateTime<Utc>| {
        t.checked_add_signed(Duration::milliseconds(1))
            .map(|end| (t, end))
            .ok_or_else(out_of_range)
    };
    let lower = text.to_ascii_lowercase();
    let day = |date: NaiveDate| -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
        let midnight = |d: NaiveDate| {
            time.tz
                .from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .ok_or_else(|| format!("{d} has no midnight in {}", time.tz))
        };
        Ok((
            midnight(date)?,
            midnight(date.succ_opt().ok_or("date out of range")?)?,
        ))
    };
    let today = time.now.with_timezone(&time.tz).date_naive();
    match lower.as_str() {
        "now" => return instant(time.now),
        "today" => return day(today),
        "yesterday" => return day(today.pred_opt().ok_or("date out of range")?),
        _ => {}
    }
    if let Some(offset) = text.strip_prefix("now") {
        let (sign, rest) = match offset.chars().next() {
            Some('-') => (-1, &offset[1..]),
            Some('+') => (1, &offset[1..]),
            _ => return Err(relative_help(text)),
        };
        let unit = rest.chars().last().ok_or_else(|| relative_help(text))?;
        let amount: u32 = rest[..rest.len() - unit.len_utf8()]
            .parse()
            .map_err(|_| relative_help(text))?;
        let signed = sign * i64::from(amount);
        // Checked: an offset past chrono's range is a 400, never a panic.
        let shift = |delta: Option<Duration>| delta.and_then(|d| time.now.checked_add_signed(d));
        let shifted = match unit {
            'm' => shift(Duration::try_minutes(signed)),
            'h' => shift(Duration::try_hours(signed)),
            'd' => shift(Duration::try_days(signed)),
            'w' => shift(Duration::try_weeks(signed)),
            'M' | 'y' => {
                let months = Months::new(if unit == 'y' {
                    amount.saturating_mul(12)
                } else {
                    amount
                });
                if sign < 0 {
                    time.now.checked_sub_months(months)
                } else {
                    time.now.checked_add_months(months)
                }
            }
            _ => return Err(relative_help(text)),
        };
        return shifted.ok_or_else(out_of_range).and_then(instant);
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return day(date);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return instant(crate::model::truncate_to_millis(t.with_timezone(&Utc)));
    }
    Err(format!(
        "'{text}' is not a time: use 2026-11-02, 2026-11-02T10:00:00Z, now, now-7d, now+1y, today or yesterday"
    ))
}

fn relative_help(text: &str) -> String {
    format!(
        "'{text}' is not a relative time: use now-15m, now-24h, now-7d, now-2w, now-3M or now+1y"
    )
}
