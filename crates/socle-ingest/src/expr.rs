//! Small arithmetic formulas for mappings: `1 - value / depth`,
//! `mountingHeight - value`, `round(value * 10) / 10`.
//!
//! Written here rather than taken from a crate: `evalexpr`, the well-kept
//! candidate, is AGPL-3.0-only since version 12 (Socle is AGPL-3.0-or-later,
//! and a dependency must not narrow that), and it is a whole language
//! (assignments, strings, regexes, tuples) where an administrator only needs
//! `+ - * / % ^`, parentheses, variables and a few functions. A hundred lines
//! of recursive descent also make the length and depth limits explicit.
//!
//! Grammar (usual precedence, `^` right-associative and above unary minus):
//!
//! ```text
//! expr    := term (('+' | '-') term)*
//! term    := unary (('*' | '/' | '%') unary)*
//! unary   := ('-' | '+') unary | power
//! power   := primary ('^' unary)?
//! primary := number | name | name '(' expr (',' expr)* ')' | '(' expr ')'
//! ```
//!
//! Names are `value` (the field's number) or entity properties; functions are
//! `abs round floor ceil sqrt min max clamp(x, lo, hi)`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest accepted formula, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 256;
/// Deepest nesting of parentheses, calls and unary operators.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ExprError {
    #[error("expression of {len} bytes exceeds the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("syntax error at character {position}: {message}")]
    Syntax { position: usize, message: String },
    #[error("expression nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("unknown function {0:?}: expected abs, round, floor, ceil, sqrt, min, max or clamp")]
    UnknownFunction(String),
    #[error("{function} takes {expected} argument(s), not {found}")]
    Arity { function: &'static str, expected: &'static str, found: usize },
    #[error("unknown variable {0:?}: not a numeric property of the entity")]
    UnknownVariable(String),
    #[error("the result is not a finite number (division by zero?)")]
    NotFinite,
}

/// A parsed formula. Serialised as its source text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Expression {
    source: String,
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Num(f64),
    Var(String),
    Neg(Box<Node>),
    Bin(Op, Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Pow,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Abs,
    Round,
    Floor,
    Ceil,
    Sqrt,
    Min,
    Max,
    Clamp,
}

impl Func {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "abs" => Self::Abs,
            "round" => Self::Round,
            "floor" => Self::Floor,
            "ceil" => Self::Ceil,
            "sqrt" => Self::Sqrt,
            "min" => Self::Min,
            "max" => Self::Max,
            "clamp" => Self::Clamp,
            _ => return None,
        })
    }

    fn check_arity(self, n: usize) -> Result<(), ExprError> {
        let (ok, function, expected) = match self {
            Self::Abs => (n == 1, "abs", "1"),
            Self::Round => (n == 1, "round", "1"),
            Self::Floor => (n == 1, "floor", "1"),
            Self::Ceil => (n == 1, "ceil", "1"),
            Self::Sqrt => (n == 1, "sqrt", "1"),
            Self::Min => (n >= 2, "min", "2 or more"),
            Self::Max => (n >= 2, "max", "2 or more"),
            Self::Clamp => (n == 3, "clamp", "3"),
        };
        if ok {
            Ok(())
        } else {
            Err(ExprError::Arity { function, expected, found: n })
        }
    }

    fn apply(self, a: &[f64]) -> f64 {
        let first = a.first().copied().unwrap_or(f64::NAN);
        match self {
            Self::Abs => first.abs(),
            Self::Round => first.round(),
            Self::Floor => first.floor(),
            Self::Ceil => first.ceil(),
            Self::Sqrt => first.sqrt(),
            Self::Min => a.iter().copied().fold(f64::INFINITY, f64::min),
            Self::Max => a.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            // lo > hi gives NaN rather than a panic (f64::clamp asserts).
            Self::Clamp => match (a.get(1), a.get(2)) {
                (Some(lo), Some(hi)) if lo <= hi => first.max(*lo).min(*hi),
                _ => f64::NAN,
            },
        }
    }
}

impl Expression {
    pub fn parse(source: &str) -> Result<Self, ExprError> {
        if source.len() > MAX_EXPRESSION_LEN {
            return Err(ExprError::TooLong { len: source.len(), max: MAX_EXPRESSION_LEN });
        }
        let mut p = Parser { chars: source.char_indices().collect(), pos: 0, depth: 0 };
        let root = p.expr()?;
        p.skip_ws();
        if let Some(&(_, c)) = p.chars.get(p.pos) {
            return Err(p.error(format!("unexpected {c:?}")));
        }
        Ok(Self { source: source.to_owned(), root })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The names used, other than `value`: the entity properties it needs.
    pub fn variables(&self) -> BTreeSet<&str> {
        fn walk<'a>(n: &'a Node, out: &mut BTreeSet<&'a str>) {
            match n {
                Node::Num(_) => {}
                Node::Var(v) if v == "value" => {}
                Node::Var(v) => {
                    out.insert(v);
                }
                Node::Neg(a) => walk(a, out),
                Node::Bin(_, a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Node::Call(_, args) => args.iter().for_each(|a| walk(a, out)),
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.root, &mut out);
        out
    }

    /// Evaluates with `value` bound to `value` and other names looked up in `vars`.
    pub fn eval(&self, value: f64, vars: &dyn Fn(&str) -> Option<f64>) -> Result<f64, ExprError> {
        let r = eval(&self.root, value, vars)?;
        if r.is_finite() {
            Ok(r)
        } else {
            Err(ExprError::NotFinite)
        }
    }
}

fn eval(n: &Node, value: f64, vars: &dyn Fn(&str) -> Option<f64>) -> Result<f64, ExprError> {
    Ok(match n {
        Node::Num(x) => *x,
        Node::Var(v) if v == "value" => value,
        Node::Var(v) => vars(v).ok_or_else(|| ExprError::UnknownVariable(v.clone()))?,
        Node::Neg(a) => -eval(a, value, vars)?,
        Node::Bin(op, a, b) => {
            let (a, b) = (eval(a, value, vars)?, eval(b, value, vars)?);
            match op {
                Op::Add => a + b,
                Op::Sub => a - b,
                Op::Mul => a * b,
                Op::Div => a / b,
                Op::Rem => a % b,
                Op::Pow => a.powf(b),
            }
        }
        Node::Call(f, args) => {
            let args = args.iter().map(|a| eval(a, value, vars)).collect::<Result<Vec<_>, _>>()?;
            f.apply(&args)
        }
    })
}

struct Parser {
    chars: Vec<(usize, char)>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn error(&self, message: impl Into<String>) -> ExprError {
        ExprError::Syntax { position: self.pos + 1, message: message.into() }
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|(_, c)| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.chars.get(self.pos).map(|(_, c)| *c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(ExprError::TooDeep)
        } else {
            Ok(())
        }
    }

    fn expr(&mut self) -> Result<Node, ExprError> {
        let mut left = self.term()?;
        loop {
            let op = match self.peek() {
                Some('+') => Op::Add,
                Some('-') => Op::Sub,
                _ => return Ok(left),
            };
            self.pos += 1;
            left = Node::Bin(op, Box::new(left), Box::new(self.term()?));
        }
    }

    fn term(&mut self) -> Result<Node, ExprError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some('*') => Op::Mul,
                Some('/') => Op::Div,
                Some('%') => Op::Rem,
                _ => return Ok(left),
            };
            self.pos += 1;
            left = Node::Bin(op, Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        self.enter()?;
        let node = if self.eat('-') {
            Node::Neg(Box::new(self.unary()?))
        } else if self.eat('+') {
            self.unary()?
        } else {
            let base = self.primary()?;
            if self.eat('^') {
                Node::Bin(Op::Pow, Box::new(base), Box::new(self.unary()?))
            } else {
                base
            }
        };
        self.depth -= 1;
        Ok(node)
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                self.enter()?;
                let inner = self.expr()?;
                self.depth -= 1;
                if !self.eat(')') {
                    return Err(self.error("expected ')'"));
                }
                Ok(inner)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let start = self.pos;
                while self.chars.get(self.pos).is_some_and(|(_, c)| c.is_ascii_alphanumeric() || *c == '_') {
                    self.pos += 1;
                }
                let name: String = self.chars[start..self.pos].iter().map(|(_, c)| c).collect();
                if !self.eat('(') {
                    return Ok(Node::Var(name));
                }
                let func = Func::parse(&name).ok_or(ExprError::UnknownFunction(name))?;
                self.enter()?;
                let mut args = vec![self.expr()?];
                while self.eat(',') {
                    args.push(self.expr()?);
                }
                self.depth -= 1;
                if !self.eat(')') {
                    return Err(self.error("expected ',' or ')'"));
                }
                func.check_arity(args.len())?;
                Ok(Node::Call(func, args))
            }
            Some(c) => Err(self.error(format!("unexpected {c:?}"))),
            None => Err(self.error("unexpected end of expression")),
        }
    }

    fn number(&mut self) -> Result<Node, ExprError> {
        let start = self.pos;
        let digit = |p: &Self| p.chars.get(p.pos).is_some_and(|(_, c)| c.is_ascii_digit());
        while digit(self) || self.chars.get(self.pos).is_some_and(|(_, c)| *c == '.') {
            self.pos += 1;
        }
        // Exponent: 1e3, 2.5E-4.
        if self.chars.get(self.pos).is_some_and(|(_, c)| *c == 'e' || *c == 'E') {
            let save = self.pos;
            self.pos += 1;
            if self.chars.get(self.pos).is_some_and(|(_, c)| *c == '+' || *c == '-') {
                self.pos += 1;
            }
            if digit(self) {
                while digit(self) {
                    self.pos += 1;
                }
            } else {
                self.pos = save;
            }
        }
        let text: String = self.chars[start..self.pos].iter().map(|(_, c)| c).collect();
        match text.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(Node::Num(x)),
            _ => {
                self.pos = start;
                Err(self.error(format!("invalid number {text:?}")))
            }
        }
    }
}

impl TryFrom<String> for Expression {
    type Error = ExprError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Expression> for String {
    fn from(e: Expression) -> Self {
        e.source
    }
}

impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str, value: f64) -> Result<f64, ExprError> {
        let vars = |n: &str| match n {
            "depth" => Some(1500.0),
            "mountingHeight" => Some(6.5),
            _ => None,
        };
        Expression::parse(s)?.eval(value, &vars)
    }

    #[test]
    fn arithmetic() {
        assert_eq!(ev("1 - value / depth", 375.0).unwrap(), 0.75);
        assert_eq!(ev("mountingHeight - value", 4.215).unwrap(), 6.5 - 4.215);
        assert_eq!(ev("2 + 3 * 4", 0.0).unwrap(), 14.0);
        assert_eq!(ev("(2 + 3) * 4", 0.0).unwrap(), 20.0);
        assert_eq!(ev("-2 ^ 2", 0.0).unwrap(), -4.0);
        assert_eq!(ev("2 ^ 3 ^ 2", 0.0).unwrap(), 512.0);
        assert_eq!(ev("10 - 4 - 3", 0.0).unwrap(), 3.0);
        assert_eq!(ev("7 % 4", 0.0).unwrap(), 3.0);
        assert_eq!(ev("1.5e3 + .5", 0.0).unwrap(), 1500.5);
        assert_eq!(ev("round(value * 10) / 10", 1.26).unwrap(), 1.3);
        assert_eq!(ev("clamp(1 - value / depth, 0, 1)", 3000.0).unwrap(), 0.0);
        assert_eq!(ev("max(1, value, 3)", 7.0).unwrap(), 7.0);
        assert_eq!(ev("min(abs(-2), sqrt(9), floor(2.7), ceil(0.2))", 0.0).unwrap(), 1.0);
    }

    #[test]
    fn errors() {
        assert!(matches!(ev("1 / (value - value)", 3.0), Err(ExprError::NotFinite)));
        assert!(matches!(ev("value / height", 3.0), Err(ExprError::UnknownVariable(v)) if v == "height"));
        assert!(matches!(ev("exp(1)", 0.0), Err(ExprError::UnknownFunction(_))));
        assert!(matches!(ev("min(1)", 0.0), Err(ExprError::Arity { .. })));
        assert!(matches!(ev("clamp(1, 2, 0)", 0.0), Err(ExprError::NotFinite)));
        for bad in ["", "1 +", "(1", "1 2", "1..2", "value $ 2", "min(1,)", "e5"] {
            assert!(ev(bad, 0.0).is_err(), "{bad}");
        }
        let e = ev("1 + * 2", 0.0).unwrap_err();
        assert_eq!(e.to_string(), "syntax error at character 5: unexpected '*'");
        assert!(matches!(Expression::parse(&"1+".repeat(200)), Err(ExprError::TooLong { .. })));
        assert!(matches!(
            Expression::parse(&format!("{}1{}", "(".repeat(40), ")".repeat(40))),
            Err(ExprError::TooDeep)
        ));
        assert!(matches!(Expression::parse(&"-".repeat(100)), Err(ExprError::TooDeep)));
    }

    #[test]
    fn variables_and_serde() {
        let e = Expression::parse("1 - value / depth + depth * k").unwrap();
        assert_eq!(e.variables().into_iter().collect::<Vec<_>>(), ["depth", "k"]);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, "\"1 - value / depth + depth * k\"");
        assert_eq!(serde_json::from_str::<Expression>(&json).unwrap(), e);
    }
}
