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
