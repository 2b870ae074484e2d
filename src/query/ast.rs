//! The syntax tree of a filter, with byte positions for error messages.

/// A literal as written (typed later against the field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub position: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Compare(Comparison, Value),
    In(Vec<Value>),
    Exists,
    IsEmpty,
    Contains(Value),
    Range(Value, Value),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Condition {
        field: String,
        field_position: usize,
        condition: Condition,
    },
}

impl Expr {
    /// The conditions (field comparisons) in the expression.
    pub fn conditions(&self) -> usize {
        match self {
            Expr::And(items) | Expr::Or(items) => items.iter().map(Expr::conditions).sum(),
            Expr::Not(inner) => inner.conditions(),
            Expr::Condition { .. } => 1,
        }
    }

    /// Every field name the expression mentions, as written.
    pub fn field_names(&self) -> Vec<&str> {
        match self {
            Expr::And(items) | Expr::Or(items) => {
                items.iter().flat_map(Expr::field_names).collect()
            }
            Expr::Not(inner) => inner.field_names(),
            Expr::Condition { field, .. } => vec![field.as_str()],
        }
    }

    /// The longest `IN [...]` list in the expression (0 without one).
    pub fn longest_in_list(&self) -> usize {
        match self {
            Expr::And(items) | Expr::Or(items) => {
                items.iter().map(Expr::longest_in_list).max().unwrap_or(0)
            }
            Expr::Not(inner) => inner.longest_in_list(),
            Expr::Condition {
                condition: Condition::In(values),
                ..
            } => values.len(),
            Expr::Condition { .. } => 0,
        }
    }
}
