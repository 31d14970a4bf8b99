//! Entity type selections (ETSI GS CIM 009 4.17): `A`, `A,B` or `A|B`
//! (any of), `A;B` (all of, for multi-typed entities), with parentheses.
//! Socle's entities have one type, so `A;B` matches only when `A` = `B`.

use crate::error::{NgsiError, Result};

pub const MAX_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq)]
pub enum TypeExpr {
    Type(String),
    Any(Vec<TypeExpr>),
    All(Vec<TypeExpr>),
}

fn bad(msg: String) -> NgsiError {
    NgsiError::BadRequestData(format!("Invalid type selection: {msg}"))
}

impl TypeExpr {
    pub fn parse(s: &str) -> Result<Self> {
        if s.len() > MAX_LEN {
            return Err(bad(format!("longer than {MAX_LEN} bytes")));
        }
        let mut pos = 0;
        let e = any(s, &mut pos, 0)?;
        if pos != s.len() {
            return Err(bad(format!("unexpected `{}`", &s[pos..])));
        }
        Ok(e)
    }

    pub fn rename(&mut self, f: &dyn Fn(&str) -> String) {
        match self {
            Self::Type(t) => *t = f(t),
            Self::Any(v) | Self::All(v) => v.iter_mut().for_each(|e| e.rename(f)),
        }
    }

    pub fn matches(&self, ty: &str) -> bool {
        match self {
            Self::Type(t) => t == ty,
            Self::Any(v) => v.iter().any(|e| e.matches(ty)),
            Self::All(v) => v.iter().all(|e| e.matches(ty)),
        }
    }

    /// The one type selected, when the expression is that simple (a SQL prefilter).
    pub fn single(&self) -> Option<&str> {
        match self {
            Self::Type(t) => Some(t),
            Self::All(v) => v.iter().find_map(TypeExpr::single),
            Self::Any(v) if v.len() == 1 => v[0].single(),
            Self::Any(_) => None,
        }
    }
}

fn any(s: &str, pos: &mut usize, depth: usize) -> Result<TypeExpr> {
    let mut parts = vec![all(s, pos, depth)?];
    while *pos < s.len() && matches!(s.as_bytes()[*pos], b'|' | b',') {
        *pos += 1;
        parts.push(all(s, pos, depth)?);
    }
    Ok(if parts.len() == 1 { parts.remove(0) } else { TypeExpr::Any(parts) })
}

fn all(s: &str, pos: &mut usize, depth: usize) -> Result<TypeExpr> {
    let mut parts = vec![atom(s, pos, depth)?];
    while *pos < s.len() && s.as_bytes()[*pos] == b';' {
        *pos += 1;
        parts.push(atom(s, pos, depth)?);
    }
    Ok(if parts.len() == 1 { parts.remove(0) } else { TypeExpr::All(parts) })
}

fn atom(s: &str, pos: &mut usize, depth: usize) -> Result<TypeExpr> {
    if s[*pos..].starts_with('(') {
        if depth >= 16 {
            return Err(bad("parentheses nested too deeply".into()));
        }
        *pos += 1;
        let e = any(s, pos, depth + 1)?;
        if !s[*pos..].starts_with(')') {
            return Err(bad("missing `)`".into()));
        }
        *pos += 1;
        return Ok(e);
    }
    let start = *pos;
    let len = s[start..].find(['|', ',', ';', '(', ')']).unwrap_or(s.len() - start);
    *pos += len;
    let t = s[start..*pos].trim();
    if t.is_empty() {
        return Err(bad(format!("a type is expected at {start}")));
    }
    Ok(TypeExpr::Type(t.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn selections() {
        let e = TypeExpr::parse("Building,Streetlight").unwrap();
        assert!(e.matches("Building") && e.matches("Streetlight") && !e.matches("Road"));
        assert_eq!(e.single(), None);
        assert!(TypeExpr::parse("(Building|Road);Building").unwrap().matches("Building"));
        assert!(!TypeExpr::parse("Building;Road").unwrap().matches("Building"));
        assert_eq!(TypeExpr::parse("Building").unwrap().single(), Some("Building"));
        for bad in ["", "A,", "(A", "A)", ";"] {
            assert!(TypeExpr::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,100}") {
            if let Ok(e) = TypeExpr::parse(&s) { let _ = e.matches("A"); let _ = e.single(); }
        }
    }
}
