//! Entity identifiers and display names (REFERENCE.md section 1).
//!
//! An identifier is the immutable key of an entity in its scope; a name is what
//! people read. When only a name is given we derive the identifier the way our
//! users' existing tool does, then repair what that rule leaves invalid (a leading
//! digit, nothing left, a reserved word) so the result is always accepted.

/// The longest identifier or name accepted.
pub const MAX_LEN: usize = 128;

/// Words the expression language of pipelines reserves; compared without case so
/// that `NULL` and `null` are both refused.
pub const RESERVED_WORDS: &[&str] = &[
    "or",
    "and",
    "eq",
    "ne",
    "lt",
    "gt",
    "le",
    "ge",
    "div",
    "mod",
    "not",
    "null",
    "true",
    "false",
    "new",
    "var",
    "return",
    "step",
    "parallel",
    "stepGroup",
    "org",
    "account",
    "class",
];

/// Checks `^[a-zA-Z_][0-9a-zA-Z_$]{0,127}$` and the reserved words.
/// The error says what is wrong and what would be accepted.
pub fn validate_identifier(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("identifier must not be empty".into());
    }
    if id.len() > MAX_LEN {
        return Err(format!(
            "identifier is {} characters long; at most {MAX_LEN} are allowed",
            id.len()
        ));
    }
    let first = id.chars().next().unwrap_or('_');
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(format!(
            "identifier '{id}' must start with a letter or '_', not '{first}'"
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '$'))
    {
        return Err(format!(
            "identifier '{id}' contains '{bad}'; only letters, digits, '_' and '$' are allowed"
        ));
    }
    if is_reserved(id) {
        return Err(format!(
            "'{id}' is a reserved word and cannot be used as an identifier; try '{id}_1'"
        ));
    }
    Ok(())
}

fn is_reserved(id: &str) -> bool {
    RESERVED_WORDS.iter().any(|w| w.eq_ignore_ascii_case(id))
}

/// Names are non-blank, at most 128 characters of letters, digits, space and `- _ . /`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("name must not be blank".into());
    }
    let len = name.chars().count();
    if len > MAX_LEN {
        return Err(format!(
            "name is {len} characters long; at most {MAX_LEN} are allowed"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '/')))
    {
        return Err(format!(
            "name contains '{bad}'; only letters, digits, spaces and - _ . / are allowed"
        ));
    }
    Ok(())
}

/// Derives a valid identifier from a display name, unique among those for which
/// `taken` answers true.
///
/// The base rule: trim, drop every character outside `[0-9a-zA-Z_$ ]`, turn each
/// run of spaces into `_`. Then: prefix `_` when the result starts with a digit or
/// `$`; use `connector` when nothing is left; append `_1` to a reserved word; and
/// append `_2`, `_3`, ... until the identifier is free.
pub fn derive_identifier(name: &str, fallback: &str, taken: impl Fn(&str) -> bool) -> String {
    let mut base = String::new();
    let mut in_space = false;
    for c in name.trim().chars() {
        if c == ' ' {
            in_space = true;
            continue;
        }
        if !(c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if in_space && !base.is_empty() {
            base.push('_');
        }
        in_space = false;
        base.push(c);
    }
    if base.is_empty() {
        base = fallback.to_string();
    }
    if base.starts_with(|c: char| c.is_ascii_digit() || c == '$') {
        base.insert(0, '_');
    }
    base.truncate(MAX_LEN);
    if is_reserved(&base) {
        base.push_str("_1");
    }
    if !taken(&base) {
        return base;
    }
    for n in 2u64.. {
        let suffix = format!("_{n}");
        let mut candidate = base.clone();
        candidate.truncate(MAX_LEN - suffix.len());
        candidate.push_str(&suffix);
        if !taken(&candidate) {
            return candidate;
        }
    }
    unreachable!("u64 suffixes are never all taken")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derive(name: &str) -> String {
        derive_identifier(name, "connector", |_| false)
    }

    #[test]
    fn derives_like_the_known_rule() {
        assert_eq!(derive("  My  prod cluster "), "My_prod_cluster");
        assert_eq!(derive("k8s-prod.eu/west"), "k8sprodeuwest");
        assert_eq!(derive("cost$ center"), "cost$_center");
    }

    #[test]
    fn derived_identifiers_are_always_valid() {
        for name in [
            "1st cluster",
            "---",
            "$$$",
            "null",
            "Account",
            "stepGroup",
            "  ",
            "日本",
            &"x".repeat(300),
            "9",
        ] {
            let id = derive(name);
            assert_eq!(
                validate_identifier(&id),
                Ok(()),
                "name {name:?} gave {id:?}"
            );
        }
        assert_eq!(derive("1st cluster"), "_1st_cluster");
        assert_eq!(derive("---"), "connector");
        assert_eq!(derive("null"), "null_1");
    }

    #[test]
    fn derived_identifiers_are_unique() {
        let taken = ["prod", "prod_2"];
        assert_eq!(
            derive_identifier("prod", "c", |c| taken.contains(&c)),
            "prod_3"
        );
        let long = "a".repeat(200);
        let first = derive(&long);
        let second = derive_identifier(&long, "c", |c| c == first);
        assert_eq!(second.len(), MAX_LEN);
        assert!(second.ends_with("_2"));
    }

    #[test]
    fn identifier_rules() {
        assert!(validate_identifier("prod_eu$1").is_ok());
        assert!(validate_identifier("_x").is_ok());
        assert!(validate_identifier("1x").is_err());
        assert!(validate_identifier("a-b").is_err());
        assert!(validate_identifier("").is_err());
        assert!(validate_identifier(&"a".repeat(129)).is_err());
        assert!(validate_identifier(&"a".repeat(128)).is_ok());
        let err = validate_identifier("class").unwrap_err();
        assert!(err.contains("reserved"), "{err}");
    }

    #[test]
    fn name_rules() {
        assert!(validate_name("prod cluster-1.eu/west_a").is_ok());
        assert!(validate_name("Zürich").is_ok());
        assert!(validate_name("  ").is_err());
        assert!(validate_name("a;b").is_err());
        assert!(validate_name(&"n".repeat(129)).is_err());
    }
}
