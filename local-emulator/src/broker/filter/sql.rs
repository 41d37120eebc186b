//! The SQL filter and action language: lexer and recursive-descent parser into [`Expr`] and
//! [`Statement`]s.

use super::{Expr, SqlError, Statement};
use crate::broker::message::PropValue;

/// Service Bus's limit on the length of a SQL filter or action.
const MAX_CHARS: usize = 1024;
/// How deep parentheses and `NOT`s may nest (the parser recurses on them).
const MAX_NESTING: usize = 32;

/// Parses a whole SQL filter expression.
pub(super) fn parse(text: &str) -> Result<Expr, SqlError> {
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
    };
    let e = p.or()?;
    if p.i != p.toks.len() {
        return Err(p.err("unexpected text after the expression"));
    }
    Ok(e)
}

/// Parses a SQL rule action: `SET name = expression` and `REMOVE name` statements, separated
/// by `;` (or nothing).
pub(super) fn parse_action(text: &str) -> Result<Vec<Statement>, SqlError> {
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
    };
    let mut out = Vec::new();
    while p.i < p.toks.len() {
        if p.sym(";") {
            continue;
        }
        if p.kw("SET") {
            let name = p.property()?;
            if !p.sym("=") {
                return Err(p.err("expected = after the property SET names"));
            }
            out.push(Statement::Set(name, p.or()?));
        } else if p.kw("REMOVE") {
            out.push(Statement::Remove(p.property()?));
        } else {
            return Err(p.err("expected SET or REMOVE"));
        }
    }
    if out.is_empty() {
        return Err(p.err("an action needs at least one SET or REMOVE"));
    }
    Ok(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(PropValue),
    Sym(String),
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, SqlError> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > MAX_CHARS {
        return Err(SqlError {
            pos: MAX_CHARS,
            message: format!("an expression is at most {MAX_CHARS} characters"),
        });
    }
    let mut out = Vec::new();
    let mut i = 0;
    let err = |pos, m: &str| SqlError {
        pos,
        message: m.to_owned(),
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(err(start, "unterminated string")),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1
                    }
                }
            }
            out.push((start, Tok::Str(s)));
        } else if c == '[' {
            let end = chars[i..]
                .iter()
                .position(|&ch| ch == ']')
                .ok_or_else(|| err(start, "unclosed ["))?;
            out.push((start, Tok::Word(chars[i + 1..i + end].iter().collect())));
            i += end + 1;
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let v = match s.parse::<i64>() {
                Ok(n) => PropValue::Int(n),
                Err(_) => PropValue::Float(s.parse().map_err(|_| err(start, "bad number"))?),
            };
            out.push((start, Tok::Num(v)));
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '$' | '-'))
            {
                i += 1;
            }
            out.push((start, Tok::Word(chars[start..i].iter().collect())));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let op = if ["<>", "!=", "<=", ">="].contains(&two.as_str()) {
                two
            } else {
                c.to_string()
            };
            const OPS: [&str; 16] = [
                "<>", "!=", "<=", ">=", "=", "<", ">", "(", ")", ",", "-", "+", "*", "/", "%", ";",
            ];
            if !OPS.contains(&op.as_str()) {
                return Err(err(start, "unexpected character"));
            }
            i += op.len();
            out.push((start, Tok::Sym(op)));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    i: usize,
    depth: usize,
}

impl Parser {
    fn err(&self, m: &str) -> SqlError {
        let pos = self.toks.get(self.i).map_or(usize::MAX, |t| t.0);
        SqlError {
            pos,
            message: m.to_owned(),
        }
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.1)
    }
    fn kw(&mut self, k: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k)) {
            self.i += 1;
            return true;
        }
        false
    }
    fn sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(x)) if x == s) {
            self.i += 1;
            return true;
        }
        false
    }
    fn or(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.and()?;
        while self.kw("OR") {
            l = Expr::Or(Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, SqlError> {
        let mut l = self.not()?;
        while self.kw("AND") {
            l = Expr::And(Box::new(l), Box::new(self.not()?));
        }
        Ok(l)
    }
    /// Runs a step that recurses, refusing expressions that nest too deeply.
    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        if self.depth >= MAX_NESTING {
            return Err(self.err("the expression nests too deeply"));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }
    fn not(&mut self) -> Result<Expr, SqlError> {
        if self.kw("NOT") {
            return Ok(Expr::Not(Box::new(self.nested(Self::not)?)));
        }
        self.cmp()
    }
    fn property(&mut self) -> Result<String, SqlError> {
        match self.peek().cloned() {
            Some(Tok::Word(w)) => {
                self.i += 1;
                Ok(w)
            }
            _ => Err(self.err("expected a property name")),
        }
    }
    /// One left-associative level of arithmetic: operands from `next`, joined by `ops`.
    fn arith(
        &mut self,
        ops: &[char],
        next: fn(&mut Self) -> Result<Expr, SqlError>,
    ) -> Result<Expr, SqlError> {
        let mut l = next(self)?;
        while let Some(op) = ops.iter().copied().find(|c| self.sym(&c.to_string())) {
            l = Expr::Arith(Box::new(l), op, Box::new(next(self)?));
        }
        Ok(l)
    }
    fn additive(&mut self) -> Result<Expr, SqlError> {
        self.arith(&['+', '-'], Self::multiplicative)
    }
    fn multiplicative(&mut self) -> Result<Expr, SqlError> {
        self.arith(&['*', '/', '%'], Self::primary)
    }
    fn cmp(&mut self) -> Result<Expr, SqlError> {
        let l = self.additive()?;
        if self.kw("IS") {
            let neg = self.kw("NOT");
            if !self.kw("NULL") {
                return Err(self.err("expected NULL"));
            }
            return Ok(Expr::IsNull(Box::new(l), neg));
        }
        let neg = self.kw("NOT");
        if self.kw("IN") {
            if !self.sym("(") {
                return Err(self.err("expected ("));
            }
            let mut list = Vec::new();
            loop {
                match self.primary()? {
                    Expr::Lit(v) => list.push(v),
                    _ => return Err(self.err("IN takes literals")),
                }
                if self.sym(")") {
                    break;
                }
                if !self.sym(",") {
                    return Err(self.err("expected , or )"));
                }
            }
            return Ok(Expr::In(Box::new(l), list, neg));
        }
        if self.kw("LIKE") {
            return match self.primary()? {
                Expr::Lit(PropValue::Str(p)) => Ok(Expr::Like(Box::new(l), p, neg)),
                _ => Err(self.err("LIKE takes a string")),
            };
        }
        if neg {
            return Err(self.err("expected IN or LIKE after NOT"));
        }
        for op in ["=", "<>", "!=", "<=", ">=", "<", ">"] {
            if self.sym(op) {
                return Ok(Expr::Cmp(
                    Box::new(l),
                    op.to_owned(),
                    Box::new(self.additive()?),
                ));
            }
        }
        Ok(l)
    }
    fn primary(&mut self) -> Result<Expr, SqlError> {
        if self.sym("(") {
            let e = self.nested(Self::or)?;
            if !self.sym(")") {
                return Err(self.err("expected )"));
            }
            return Ok(e);
        }
        if self.sym("-") {
            return match self.nested(Self::primary)? {
                Expr::Lit(PropValue::Int(n)) => Ok(Expr::Lit(PropValue::Int(-n))),
                Expr::Lit(PropValue::Float(f)) => Ok(Expr::Lit(PropValue::Float(-f))),
                _ => Err(self.err("expected a number after -")),
            };
        }
        let tok = self
            .peek()
            .cloned()
            .ok_or_else(|| self.err("unexpected end of filter"))?;
        self.i += 1;
        Ok(match tok {
            Tok::Str(s) => Expr::Lit(PropValue::Str(s)),
            Tok::Num(n) => Expr::Lit(n),
            Tok::Word(w) if w.eq_ignore_ascii_case("TRUE") => Expr::Lit(PropValue::Bool(true)),
            Tok::Word(w) if w.eq_ignore_ascii_case("FALSE") => Expr::Lit(PropValue::Bool(false)),
            Tok::Word(w) if w.eq_ignore_ascii_case("NULL") => Expr::Lit(PropValue::Null),
            Tok::Word(w) if w.eq_ignore_ascii_case("NEWID") => {
                if !(self.sym("(") && self.sym(")")) {
                    return Err(self.err("newid takes no arguments: newid()"));
                }
                Expr::NewId
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("EXISTS") => {
                let ok = self.sym("(");
                let name = match self.peek().cloned() {
                    Some(Tok::Word(n)) if ok => n,
                    _ => return Err(self.err("EXISTS takes a property")),
                };
                self.i += 1;
                if !self.sym(")") {
                    return Err(self.err("expected )"));
                }
                Expr::Exists(name)
            }
            Tok::Word(w) => Expr::Prop(w),
            Tok::Sym(_) => {
                return Err(SqlError {
                    pos: self.toks[self.i - 1].0,
                    message: "unexpected symbol".into(),
                })
            }
        })
    }
}
