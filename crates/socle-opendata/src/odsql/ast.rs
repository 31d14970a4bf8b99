//! The ODSQL syntax tree. Every node keeps the byte offset where it starts so an
//! evaluation error can point at the clause text like a parse error does.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    /// `date'2024-05'`: kept as written, resolved against the query's time zone.
    Date(String),
    /// `geom'POINT(2.35 48.85)'` (WKT or GeoJSON), parsed when the query is built.
    Geom(String),
    /// `1km`, `500m`: in metres.
    Distance(f64),
    /// `1 day`, `2 month` (only inside `range()`).
    Interval(u32, IntervalUnit),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalUnit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    And,
    Or,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub value: Box<Expr>,
    pub inclusive: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Literal(Literal),
    Field(String),
    /// `*`, only as the argument of `count(*)`.
    Star,
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Like {
        value: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
    },
    IsNull {
        value: Box<Expr>,
        negated: bool,
    },
    InRange {
        value: Box<Expr>,
        low: Option<Bound>,
        high: Option<Bound>,
        negated: bool,
    },
    InList {
        value: Box<Expr>,
        items: Vec<Expr>,
        negated: bool,
    },
    Call {
        name: String,
        args: Vec<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub position: usize,
}

impl Expr {
    pub fn new(kind: ExprKind, position: usize) -> Self {
        Expr { kind, position }
    }

    /// Whether an aggregate function appears anywhere in this expression.
    pub fn has_aggregate(&self) -> bool {
        match &self.kind {
            ExprKind::Call { name, args } => {
                super::functions::is_aggregate(name) || args.iter().any(Expr::has_aggregate)
            }
            ExprKind::Not(e) | ExprKind::Neg(e) => e.has_aggregate(),
            ExprKind::Binary(_, a, b) => a.has_aggregate() || b.has_aggregate(),
            ExprKind::Like { value, pattern, .. } => value.has_aggregate() || pattern.has_aggregate(),
            ExprKind::IsNull { value, .. } => value.has_aggregate(),
            ExprKind::InRange { value, .. } | ExprKind::InList { value, .. } => value.has_aggregate(),
            ExprKind::Literal(_) | ExprKind::Field(_) | ExprKind::Star => false,
        }
    }

    /// Structural equality ignoring positions, to match a `select` expression with a
    /// `group_by` one written the same way.
    pub fn same_as(&self, other: &Expr) -> bool {
        self.to_string() == other.to_string()
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Literal(l) => match l {
                Literal::Null => write!(f, "null"),
                Literal::Bool(b) => write!(f, "{b}"),
                Literal::Number(n) => write!(f, "{n}"),
                Literal::Text(s) => write!(f, "{s:?}"),
                Literal::Date(s) => write!(f, "date'{s}'"),
                Literal::Geom(s) => write!(f, "geom'{s}'"),
                Literal::Distance(m) => write!(f, "{m}m"),
                Literal::Interval(n, u) => write!(f, "{n} {u:?}"),
            },
            ExprKind::Field(name) => write!(f, "{name}"),
            ExprKind::Star => write!(f, "*"),
            ExprKind::Not(e) => write!(f, "not {e}"),
            ExprKind::Neg(e) => write!(f, "-{e}"),
            ExprKind::Binary(op, a, b) => write!(f, "({a} {op:?} {b})"),
            ExprKind::Like { value, pattern, negated } => {
                write!(f, "({value} {}like {pattern})", if *negated { "not " } else { "" })
            }
            ExprKind::IsNull { value, negated } => {
                write!(f, "({value} is {}null)", if *negated { "not " } else { "" })
            }
            ExprKind::InRange { value, low, high, .. } => write!(
                f,
                "({value} in {:?}..{:?})",
                low.as_ref().map(|b| (b.value.to_string(), b.inclusive)),
                high.as_ref().map(|b| (b.value.to_string(), b.inclusive))
            ),
            ExprKind::InList { value, items, .. } => {
                write!(f, "({value} in (")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "))")
            }
            ExprKind::Call { name, args } => {
                write!(f, "{name}(")?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{arg}")?;
                }
                write!(f, ")")
            }
        }
    }
}

/// One item of `select` or `group_by`: an expression and the key it gets in results
/// (its alias, or the text as written, as Opendatasoft does).
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub expr: Expr,
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub expr: Expr,
    pub direction: Direction,
}
