//! Shell-style glob patterns over bytes: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`, `\` escapes.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Byte(u8),
    Any,
    Star,
    Class { negate: bool, ranges: Vec<(u8, u8)> },
}

/// A compiled glob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    toks: Vec<Tok>,
    /// The pattern's bytes when it has no wildcard: matching is then a comparison.
    literal: Option<Vec<u8>>,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, String> {
        let p = pattern.as_bytes();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                b'*' => {
                    if toks.last() != Some(&Tok::Star) {
                        toks.push(Tok::Star)
                    }
                }
                b'?' => toks.push(Tok::Any),
                b'\\' => {
                    i += 1;
                    let b = *p
                        .get(i)
                        .ok_or_else(|| format!("pattern {pattern:?} ends with a lone backslash"))?;
                    toks.push(Tok::Byte(b));
                }
                b'[' => {
                    let mut j = i + 1;
                    let negate = matches!(p.get(j), Some(b'!' | b'^'));
                    if negate {
                        j += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let c = *p
                            .get(j)
                            .ok_or_else(|| format!("pattern {pattern:?} has an unclosed '['"))?;
                        if c == b']' && !first {
                            break;
                        }
                        first = false;
                        if p.get(j + 1) == Some(&b'-') && p.get(j + 2).is_some_and(|&e| e != b']') {
                            ranges.push((c, p[j + 2]));
                            j += 3;
                        } else {
                            ranges.push((c, c));
                            j += 1;
                        }
                    }
                    toks.push(Tok::Class { negate, ranges });
                    i = j;
                }
                b => toks.push(Tok::Byte(b)),
            }
            i += 1;
        }
        let literal = toks
            .iter()
            .map(|t| match t {
                Tok::Byte(b) => Some(*b),
                _ => None,
            })
            .collect();
        Ok(Glob { toks, literal })
    }

    /// Whether the pattern has any wildcard (otherwise it is an exact match).
    pub fn is_literal(&self) -> bool {
        self.literal.is_some()
    }

    pub fn matches(&self, s: &[u8]) -> bool {
        if let Some(lit) = &self.literal {
            return s == lit.as_slice();
        }
        // Iterative matching with one backtrack point for the last star: linear for patterns
        // without stars, O(n*m) worst case, no recursion.
        let (mut ti, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            match self.toks.get(ti) {
                Some(Tok::Star) => {
                    star = Some((ti, si));
                    ti += 1;
                    continue;
                }
                Some(t) if one(t, s[si]) => {
                    ti += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((st, ss)) => {
                    ti = st + 1;
                    si = ss + 1;
                    star = Some((st, ss + 1));
                }
                None => return false,
            }
        }
        self.toks[ti..].iter().all(|t| *t == Tok::Star)
    }
}

fn one(t: &Tok, b: u8) -> bool {
    match t {
        Tok::Byte(c) => *c == b,
        Tok::Any => true,
        Tok::Star => false,
        Tok::Class { negate, ranges } => {
            ranges.iter().any(|&(lo, hi)| lo <= b && b <= hi) != *negate
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).unwrap().matches(s.as_bytes())
    }

    #[test]
    fn globs() {
        assert!(m("nginx", "nginx"));
        assert!(!m("nginx", "nginx2"));
        assert!(m("ngin*", "nginx"));
        assert!(m("*", ""));
        assert!(m("*x*", "nginx"));
        assert!(!m("*y*", "nginx"));
        assert!(m("?ginx", "nginx"));
        assert!(m("[mn]ginx", "nginx"));
        assert!(!m("[!n]ginx", "nginx"));
        assert!(m("[a-z]*[0-9]", "python3"));
        assert!(m("a*b*c", "aXXbYYbc"));
        assert!(!m("a*b*c", "aXXbYYb"));
        assert!(m("\\*", "*"));
        assert!(Glob::new("[abc").is_err());
        assert!(Glob::new("abc\\").is_err());
    }
}
