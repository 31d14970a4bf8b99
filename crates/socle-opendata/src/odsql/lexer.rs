//! Tokens of ODSQL. Works on `char_indices` so every position is a byte offset on a
//! character boundary, and nothing here can index out of a string.

use super::OdsqlError;

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    Ident(String),
    /// A back-quoted field name: never a keyword.
    Quoted(String),
    Text(String),
    Number(f64),
    /// A number glued to a distance unit (`1km`), in metres.
    Distance(f64),
    Date(String),
    Geom(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    DotDot,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub token: Token,
    pub position: usize,
}

const MAX_TOKENS: usize = 10_000;

pub fn tokenize(input: &str) -> Result<Vec<Spanned>, OdsqlError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if tokens.len() > MAX_TOKENS {
            return Err(OdsqlError::at(start, "expression too long"));
        }
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let single = |t: Token| Spanned { token: t, position: start };
        match c {
            '(' | ')' | '[' | ']' | ',' | '+' | '-' | '*' | '/' | '%' | '=' => {
                chars.next();
                tokens.push(single(match c {
                    '(' => Token::LParen,
                    ')' => Token::RParen,
                    '[' => Token::LBracket,
                    ']' => Token::RBracket,
                    ',' => Token::Comma,
                    '+' => Token::Plus,
                    '-' => Token::Minus,
                    '*' => Token::Star,
                    '/' => Token::Slash,
                    '%' => Token::Percent,
                    _ => Token::Eq,
                }));
            }
            '!' => {
                chars.next();
                if chars.peek().map(|&(_, c)| c) == Some('=') {
                    chars.next();
                    tokens.push(single(Token::Ne));
                } else {
                    return Err(OdsqlError::at(start, "unexpected character '!'"));
                }
            }
            '<' | '>' => {
                chars.next();
                let next = chars.peek().map(|&(_, c)| c);
                let token = match (c, next) {
                    ('<', Some('=')) => Some(Token::Le),
                    ('<', Some('>')) => Some(Token::Ne),
                    ('>', Some('=')) => Some(Token::Ge),
                    _ => None,
                };
                match token {
                    Some(t) => {
                        chars.next();
                        tokens.push(single(t));
                    }
                    None => tokens.push(single(if c == '<' { Token::Lt } else { Token::Gt })),
                }
            }
            '.' => {
                chars.next();
                if chars.peek().map(|&(_, c)| c) == Some('.') {
                    chars.next();
                    tokens.push(single(Token::DotDot));
                } else {
                    return Err(OdsqlError::at(start, "unexpected character '.'"));
                }
            }
            '"' | '\'' => {
                chars.next();
                let text = quoted(&mut chars, c, start)?;
                tokens.push(single(Token::Text(text)));
            }
            '`' => {
                chars.next();
                let text = quoted(&mut chars, '`', start)?;
                tokens.push(single(Token::Quoted(text)));
            }
            c if c.is_ascii_digit() => {
                let mut end = start;
                let mut seen_dot = false;
                while let Some(&(i, d)) = chars.peek() {
                    if d.is_ascii_digit() {
                        end = i + 1;
                        chars.next();
                    } else if d == '.' && !seen_dot {
                        // `1..5` is a range, not the number `1.`.
                        let rest = &input[i..];
                        if rest.starts_with("..") {
                            break;
                        }
                        seen_dot = true;
                        end = i + 1;
                        chars.next();
                    } else {
                        break;
                    }
                }
                let number: f64 = input[start..end].parse().map_err(|_| OdsqlError::at(start, "invalid number"))?;
                let unit_start = end;
                let mut unit_end = end;
                while let Some(&(i, d)) = chars.peek() {
                    if d.is_ascii_alphabetic() {
                        unit_end = i + 1;
                        chars.next();
                    } else {
                        break;
                    }
                }
                if unit_end > unit_start {
                    let factor = match &input[unit_start..unit_end] {
                        "m" => 1.0,
                        "km" => 1000.0,
                        "mi" => 1609.344,
                        "yd" => 0.9144,
                        "ft" => 0.3048,
                        "cm" => 0.01,
                        "mm" => 0.001,
                        other => return Err(OdsqlError::at(unit_start, format!("unknown distance unit '{other}'"))),
                    };
                    tokens.push(single(Token::Distance(number * factor)));
                } else {
                    tokens.push(single(Token::Number(number)));
                }
            }
            c if c.is_alphabetic() || c == '_' || c == '#' => {
                let mut end = start;
                while let Some(&(i, d)) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' || (d == '#' && i == start) {
                        end = i + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = &input[start..end];
                // `date'…'` and `geom'…'` are typed literals.
                let next = chars.peek().map(|&(_, c)| c);
                let lower = word.to_ascii_lowercase();
                if (lower == "date" || lower == "geom" || lower == "geometry") && matches!(next, Some('\'') | Some('"'))
                {
                    let quote = next.unwrap_or('\'');
                    chars.next();
                    let text = quoted(&mut chars, quote, start)?;
                    tokens.push(single(if lower == "date" { Token::Date(text) } else { Token::Geom(text) }));
                } else {
                    tokens.push(single(Token::Ident(word.to_string())));
                }
            }
            other => return Err(OdsqlError::at(start, format!("unexpected character '{other}'"))),
        }
    }
    Ok(tokens)
}

/// Reads up to the closing quote; a doubled quote or a backslash escapes it.
fn quoted(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    quote: char,
    start: usize,
) -> Result<String, OdsqlError> {
    let mut text = String::new();
    while let Some((_, c)) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some((_, escaped)) => text.push(escaped),
                None => break,
            }
        } else if c == quote {
            if chars.peek().map(|&(_, c)| c) == Some(quote) {
                chars.next();
                text.push(quote);
            } else {
                return Ok(text);
            }
        } else {
            text.push(c);
        }
    }
    Err(OdsqlError::at(start, "unterminated quoted text"))
}
