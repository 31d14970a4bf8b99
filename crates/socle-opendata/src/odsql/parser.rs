//! Recursive-descent parser for the ODSQL clauses. Depth is bounded, so no input can
//! overflow the stack; every error carries the byte position of the offending token.

use super::ast::*;
use super::lexer::{tokenize, Spanned, Token};
use super::OdsqlError;

const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Spanned>,
    index: usize,
    depth: usize,
}

pub fn parse_where(input: &str) -> Result<Option<Expr>, OdsqlError> {
    let mut p = Parser::new(input)?;
    if p.at_end() {
        return Ok(None);
    }
    let expr = p.expr()?;
    p.expect_end()?;
    Ok(Some(expr))
}

/// `select` and `group_by`: comma-separated expressions with optional `as alias`.
pub fn parse_projections(input: &str) -> Result<Vec<Projection>, OdsqlError> {
    let mut p = Parser::new(input)?;
    let mut items = Vec::new();
    if p.at_end() {
        return Ok(items);
    }
    loop {
        let start = p.position();
        let expr = if p.peek() == Some(&Token::Star) {
            let position = p.position();
            p.index += 1;
            Expr::new(ExprKind::Star, position)
        } else {
            p.expr()?
        };
        let end = p.position();
        let key = if p.eat_keyword("as") {
            match p.next() {
                Some(Spanned { token: Token::Ident(name) | Token::Quoted(name), .. }) => name,
                _ => return Err(p.error_here("expected an alias after 'as'")),
            }
        } else {
            input.get(start..end).unwrap_or_default().trim().to_string()
        };
        items.push(Projection { expr, key });
        if !p.eat(&Token::Comma) {
            break;
        }
    }
    p.expect_end()?;
    Ok(items)
}

pub fn parse_order_by(input: &str) -> Result<Vec<OrderItem>, OdsqlError> {
    let mut p = Parser::new(input)?;
    let mut items = Vec::new();
    if p.at_end() {
        return Ok(items);
    }
    loop {
        let expr = p.expr()?;
        let direction = if p.eat_keyword("desc") {
            Direction::Desc
        } else {
            p.eat_keyword("asc");
            Direction::Asc
        };
        items.push(OrderItem { expr, direction });
        if !p.eat(&Token::Comma) {
            break;
        }
    }
    p.expect_end()?;
    Ok(items)
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Result<Self, OdsqlError> {
        Ok(Parser { input, tokens: tokenize(input)?, index: 0, depth: 0 })
    }

    fn at_end(&self) -> bool {
        self.index >= self.tokens.len()
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.index).map(|s| &s.token)
    }

    fn peek_at(&self, offset: usize) -> Option<&Token> {
        self.tokens.get(self.index + offset).map(|s| &s.token)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.index).map(|s| s.position).unwrap_or(self.input.len())
    }

    fn next(&mut self) -> Option<Spanned> {
        let t = self.tokens.get(self.index).cloned();
        if t.is_some() {
            self.index += 1;
        }
        t
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.index += 1;
            true
        } else {
            false
        }
    }

    fn is_keyword(&self, offset: usize, word: &str) -> bool {
        matches!(self.peek_at(offset), Some(Token::Ident(w)) if w.eq_ignore_ascii_case(word))
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        if self.is_keyword(0, word) {
            self.index += 1;
            true
        } else {
            false
        }
    }

    fn error_here(&self, message: impl Into<String>) -> OdsqlError {
        let message = message.into();
        match self.tokens.get(self.index) {
            Some(_) => OdsqlError::at(self.position(), message),
            None => OdsqlError::at(self.input.len(), format!("{message} at end of input")),
        }
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<(), OdsqlError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error_here(format!("expected {what}")))
        }
    }

    fn expect_end(&self) -> Result<(), OdsqlError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.error_here("unexpected token"))
        }
    }

    fn enter(&mut self) -> Result<(), OdsqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(self.error_here("expression nested too deeply"))
        } else {
            Ok(())
        }
    }

    fn expr(&mut self) -> Result<Expr, OdsqlError> {
        self.enter()?;
        let result = self.or_expr();
        self.depth -= 1;
        result
    }

    fn or_expr(&mut self) -> Result<Expr, OdsqlError> {
        let mut left = self.and_expr()?;
        while self.is_keyword(0, "or") {
            let position = self.position();
            self.index += 1;
            let right = self.and_expr()?;
            left = Expr::new(ExprKind::Binary(BinaryOp::Or, Box::new(left), Box::new(right)), position);
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, OdsqlError> {
        let mut left = self.not_expr()?;
        while self.is_keyword(0, "and") {
            let position = self.position();
            self.index += 1;
            let right = self.not_expr()?;
            left = Expr::new(ExprKind::Binary(BinaryOp::And, Box::new(left), Box::new(right)), position);
        }
        Ok(left)
    }

    fn not_expr(&mut self) -> Result<Expr, OdsqlError> {
        if self.is_keyword(0, "not") {
            let position = self.position();
            self.index += 1;
            self.enter()?;
            let inner = self.not_expr();
            self.depth -= 1;
            return Ok(Expr::new(ExprKind::Not(Box::new(inner?)), position));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, OdsqlError> {
        let left = self.additive()?;
        let position = left.position;
        let op = match self.peek() {
            Some(Token::Eq) => Some(BinaryOp::Eq),
            Some(Token::Ne) => Some(BinaryOp::Ne),
            Some(Token::Lt) => Some(BinaryOp::Lt),
            Some(Token::Le) => Some(BinaryOp::Le),
            Some(Token::Gt) => Some(BinaryOp::Gt),
            Some(Token::Ge) => Some(BinaryOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.index += 1;
            let right = self.additive()?;
            return Ok(Expr::new(ExprKind::Binary(op, Box::new(left), Box::new(right)), position));
        }
        let negated = self.is_keyword(0, "not") && (self.is_keyword(1, "in") || self.is_keyword(1, "like"));
        if negated {
            self.index += 1;
        }
        if self.eat_keyword("like") {
            let pattern = self.additive()?;
            return Ok(Expr::new(
                ExprKind::Like { value: Box::new(left), pattern: Box::new(pattern), negated },
                position,
            ));
        }
        if self.eat_keyword("in") {
            return self.in_clause(left, negated);
        }
        if self.eat_keyword("is") {
            let negated = self.eat_keyword("not");
            if !self.eat_keyword("null") {
                return Err(self.error_here("expected 'null' after 'is'"));
            }
            return Ok(Expr::new(ExprKind::IsNull { value: Box::new(left), negated }, position));
        }
        Ok(left)
    }

    /// `[a..b]`, `]a..b[` (exclusive bounds), `[a..]`, `[..b]`, or `(x, y, z)`.
    fn in_clause(&mut self, value: Expr, negated: bool) -> Result<Expr, OdsqlError> {
        let position = value.position;
        match self.peek() {
            Some(Token::LParen) => {
                self.index += 1;
                let mut items = vec![self.additive()?];
                while self.eat(&Token::Comma) {
                    items.push(self.additive()?);
                }
                self.expect(&Token::RParen, "')'")?;
                Ok(Expr::new(ExprKind::InList { value: Box::new(value), items, negated }, position))
            }
            Some(Token::LBracket) | Some(Token::RBracket) => {
                let low_inclusive = self.peek() == Some(&Token::LBracket);
                self.index += 1;
                let low = if self.peek() == Some(&Token::DotDot) { None } else { Some(self.additive()?) };
                self.expect(&Token::DotDot, "'..'")?;
                let high = if matches!(self.peek(), Some(Token::LBracket | Token::RBracket)) {
                    None
                } else {
                    Some(self.additive()?)
                };
                let high_inclusive = match self.next().map(|s| s.token) {
                    Some(Token::RBracket) => true,
                    Some(Token::LBracket) => false,
                    _ => {
                        self.index = self.index.saturating_sub(1);
                        return Err(self.error_here("expected ']' or '[' closing the range"));
                    }
                };
                Ok(Expr::new(
                    ExprKind::InRange {
                        value: Box::new(value),
                        low: low.map(|v| Bound { value: Box::new(v), inclusive: low_inclusive }),
                        high: high.map(|v| Bound { value: Box::new(v), inclusive: high_inclusive }),
                        negated,
                    },
                    position,
                ))
            }
            _ => Err(self.error_here("expected a range [a..b] or a list (a, b) after 'in'")),
        }
    }

    fn additive(&mut self) -> Result<Expr, OdsqlError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Some(Token::Plus) => BinaryOp::Add,
                Some(Token::Minus) => BinaryOp::Sub,
                _ => return Ok(left),
            };
            let position = self.position();
            self.index += 1;
            let right = self.multiplicative()?;
            left = Expr::new(ExprKind::Binary(op, Box::new(left), Box::new(right)), position);
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, OdsqlError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Token::Star) => BinaryOp::Mul,
                Some(Token::Slash) => BinaryOp::Div,
                Some(Token::Percent) => BinaryOp::Rem,
                _ => return Ok(left),
            };
            let position = self.position();
            self.index += 1;
            let right = self.unary()?;
            left = Expr::new(ExprKind::Binary(op, Box::new(left), Box::new(right)), position);
        }
    }

    fn unary(&mut self) -> Result<Expr, OdsqlError> {
        if self.peek() == Some(&Token::Minus) {
            let position = self.position();
            self.index += 1;
            self.enter()?;
            let inner = self.unary();
            self.depth -= 1;
            return Ok(Expr::new(ExprKind::Neg(Box::new(inner?)), position));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, OdsqlError> {
        let Some(Spanned { token, position }) = self.next() else {
            return Err(self.error_here("expected an expression"));
        };
        let literal = |l: Literal| Ok(Expr::new(ExprKind::Literal(l), position));
        match token {
            Token::Number(n) => {
                // `1 day` inside range(): a number followed by a calendar unit.
                if let Some(Token::Ident(word)) = self.peek() {
                    if let Some(unit) = interval_unit(word) {
                        if n.fract() == 0.0 && (1.0..=100_000.0).contains(&n) {
                            self.index += 1;
                            return literal(Literal::Interval(n as u32, unit));
                        }
                    }
                }
                literal(Literal::Number(n))
            }
            Token::Distance(m) => literal(Literal::Distance(m)),
            Token::Text(s) => literal(Literal::Text(s)),
            Token::Date(s) => literal(Literal::Date(s)),
            Token::Geom(s) => literal(Literal::Geom(s)),
            Token::Quoted(name) => Ok(Expr::new(ExprKind::Field(name), position)),
            Token::LParen => {
                let inner = self.expr()?;
                self.expect(&Token::RParen, "')'")?;
                Ok(inner)
            }
            Token::Ident(word) => {
                let lower = word.to_ascii_lowercase();
                match lower.as_str() {
                    "null" => return literal(Literal::Null),
                    "true" => return literal(Literal::Bool(true)),
                    "false" => return literal(Literal::Bool(false)),
                    "and" | "or" | "not" | "in" | "like" | "is" | "as" | "asc" | "desc" => {
                        return Err(OdsqlError::at(position, format!("unexpected keyword '{word}'")))
                    }
                    _ => {}
                }
                if self.eat(&Token::LParen) {
                    self.enter()?;
                    let args = self.arguments();
                    self.depth -= 1;
                    let args = args?;
                    super::functions::check_call(&lower, &args, position)?;
                    return Ok(Expr::new(ExprKind::Call { name: lower, args }, position));
                }
                Ok(Expr::new(ExprKind::Field(word), position))
            }
            _ => {
                self.index -= 1;
                Err(self.error_here("expected an expression"))
            }
        }
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, OdsqlError> {
        let mut args = Vec::new();
        if self.eat(&Token::RParen) {
            return Ok(args);
        }
        loop {
            if self.peek() == Some(&Token::Star) {
                let position = self.position();
                self.index += 1;
                args.push(Expr::new(ExprKind::Star, position));
            } else {
                args.push(self.expr()?);
            }
            if self.eat(&Token::Comma) {
                continue;
            }
            self.expect(&Token::RParen, "',' or ')'")?;
            return Ok(args);
        }
    }
}

fn interval_unit(word: &str) -> Option<IntervalUnit> {
    Some(match word.to_ascii_lowercase().trim_end_matches('s') {
        "second" => IntervalUnit::Second,
        "minute" => IntervalUnit::Minute,
        "hour" => IntervalUnit::Hour,
        "day" => IntervalUnit::Day,
        "week" => IntervalUnit::Week,
        "month" => IntervalUnit::Month,
        "year" => IntervalUnit::Year,
        _ => return None,
    })
}
