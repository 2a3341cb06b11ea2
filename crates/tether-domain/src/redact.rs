//! Keeping resolved secret values out of everything a task returns.
//!
//! A task's result (a connection-test report, an error message) is built from
//! what clusters and identity providers answered, and those answers can echo
//! what was sent (a user name, a client id). [`Redactor`] replaces every
//! occurrence of a value the task received in every string of a JSON value, so
//! no report, hint, error or history row carries one. The delegate applies it
//! before a result leaves it, and the manager again before storing one.

use serde_json::Value;

/// Values shorter than this cannot be told apart from ordinary words, and are
/// not searched for (a 2-character "secret" would blank out half a report).
pub const MIN_REDACTED_LEN: usize = 3;

/// Lines of a multi-line value (a PEM key) at least this long are searched for
/// on their own too, so a quoted line is caught.
const MIN_LINE_LEN: usize = 16;

/// How tether marks text it cut short when quoting an answer.
const ELLIPSIS: char = '…';

/// A value cut short by [`ELLIPSIS`] is caught from this many characters on.
const MIN_PREFIX_LEN: usize = 6;

/// The values to remove and what replaces each.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// (needle, replacement), longest needle first.
    needles: Vec<(String, String)>,
}

impl Redactor {
    /// A redactor for `(reference, value)` pairs, e.g. `("account.tok", "eyJ...")`.
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a str)>) -> Redactor {
        let mut needles: Vec<(String, String)> = Vec::new();
        for (reference, value) in secrets {
            let replacement = format!("<secret {reference}>");
            let mut add = |n: &str| {
                if n.chars().count() >= MIN_REDACTED_LEN && !needles.iter().any(|(x, _)| x == n) {
                    needles.push((n.to_string(), replacement.clone()));
                }
            };
            add(value);
            add(value.trim());
            if value.contains('\n') {
                for line in value.lines().map(str::trim) {
                    // PEM armour lines are the same in every key.
                    if line.len() >= MIN_LINE_LEN && !line.starts_with("-----") {
                        add(line);
                    }
                }
            }
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.0.len()));
        Redactor { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `s` with every secret value replaced, also one that quoted text cut
    /// short (`…`) so that only its beginning is left.
    pub fn text(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (needle, replacement) in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), replacement);
            }
        }
        if out.contains(ELLIPSIS) {
            out = self.cut_prefixes(&out);
        }
        out
    }

    /// Replaces `<prefix of a value>…` with the value's replacement.
    fn cut_prefixes(&self, s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(at) = rest.find(ELLIPSIS) {
            let before = &rest[..at];
            let hit = self.needles.iter().find_map(|(needle, replacement)| {
                // The longest tail of `before` that begins the value.
                let chars: Vec<(usize, char)> = before.char_indices().collect();
                (0..chars.len()).find_map(|i| {
                    let tail = &before[chars[i].0..];
                    (tail.chars().count() >= MIN_PREFIX_LEN
                        && tail.len() < needle.len()
                        && needle.starts_with(tail))
                    .then_some((chars[i].0, replacement))
                })
            });
            match hit {
                Some((start, replacement)) => {
                    out.push_str(&before[..start]);
                    out.push_str(replacement);
                }
                None => out.push_str(before),
            }
            out.push(ELLIPSIS);
            rest = &rest[at + ELLIPSIS.len_utf8()..];
        }
        out.push_str(rest);
        out
    }

    /// Replaces secret values in every string (and object key) of `v`.
    pub fn value(&self, v: &mut Value) {
        if self.is_empty() {
            return;
        }
        match v {
            Value::String(s) => {
                if self.contains_any(s) {
                    *s = self.text(s);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.value(i)),
            Value::Object(map) => {
                let keys: Vec<String> = map
                    .keys()
                    .filter(|k| self.contains_any(k))
                    .cloned()
                    .collect();
                for k in keys {
                    if let Some(inner) = map.remove(&k) {
                        map.insert(self.text(&k), inner);
                    }
                }
                map.values_mut().for_each(|i| self.value(i));
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// True when `s` holds one of the values.
    pub fn contains_any(&self, s: &str) -> bool {
        self.needles.iter().any(|(n, _)| s.contains(n.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_values_everywhere_longest_first() {
        let r = Redactor::new([
            ("account.user", "alice-7f3a"),
            ("account.both", "alice-7f3a-and-more"),
            ("x", "ab"),
        ]);
        let mut v = json!({
            "hints": ["The issuer rejected the grant for 'alice-7f3a-and-more'", "ok ab"],
            "nested": {"alice-7f3a": [{"m": " alice-7f3a "}], "n": 3},
        });
        r.value(&mut v);
        let text = v.to_string();
        assert!(!text.contains("alice-7f3a"), "{text}");
        assert!(text.contains("<secret account.both>"), "{text}");
        assert!(text.contains("<secret account.user>"), "{text}");
        // Too short to search for.
        assert!(text.contains("ok ab"), "{text}");
    }

    #[test]
    fn catches_trimmed_values_and_lines_of_pem() {
        let key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
        let r = Redactor::new([("tok", "token-value \n"), ("key", key)]);
        assert_eq!(r.text("got token-value!"), "got <secret tok>!");
        assert_eq!(
            r.text("line MIIEvQIBADANBgkqhkiG9w0BAQEFAASC quoted"),
            "line <secret key> quoted"
        );
        assert_eq!(
            r.text("expected -----BEGIN PRIVATE KEY-----"),
            "expected -----BEGIN PRIVATE KEY-----"
        );
        // Quoted text cut short in the middle of a value.
        assert_eq!(
            r.text("answered 'Bearer token-va…' and 'unrelated…'"),
            "answered 'Bearer <secret tok>…' and 'unrelated…'"
        );
    }
}
