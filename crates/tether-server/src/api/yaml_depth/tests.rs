use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_yaml::Value;

use super::*;

/// Open collections at the deepest point, as this pass counts them.
fn counted(text: &str) -> usize {
    (0..=MAX_DEPTH + 1)
        .find(|&max| check(text, max).is_ok())
        .unwrap_or(usize::MAX)
}

/// The nesting of the parsed document (a scalar is 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Sequence(s) => 1 + s.iter().map(depth).max().unwrap_or(0),
        Value::Mapping(m) => {
            1 + m
                .iter()
                .map(|(k, v)| depth(k).max(depth(v)))
                .max()
                .unwrap_or(0)
        }
        Value::Tagged(t) => depth(&t.value),
        _ => 0,
    }
}

#[test]
fn flow_and_block_nesting_are_counted() {
    assert_eq!(counted("a"), 0);
    assert_eq!(counted("[1, [2, [3]]]"), 3);
    assert_eq!(counted("{a: [b, {c: d}]}"), 3);
    assert_eq!(counted("a:\n  b:\n    c: 1\n"), 3);
    assert_eq!(counted("- - - x\n"), 3);
    assert_eq!(counted("a:\n  - [1, {b: c}]\n"), 4);
    assert_eq!(counted("x: [\n  [\n   1],\n  2]\n"), 3);
}

#[test]
fn brackets_inside_scalars_and_comments_do_not_count() {
    for text in [
        "a: \"[[[[{{{{\"\n",
        "a: '[[[[''{{{{'\n",
        "a: x [[[[ {{{{\n",
        "a: b # [[[[[[\n",
        "# [[[[[\n[1] # ]]]]\n",
        "a: |\n  [[[[[[\n  {{{{{\nb: 1\n",
        "a: >-\n  [[[[[[\n\n  {{{{{\n",
        "a: !<tag:x,y[]> b\n",
        "[\"]]]]\", ']]]]', \"\\\"]]\"]\n",
        "a: \"multi\n  line [[[[ \\\n  still\"\n",
    ] {
        let v: Value = serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(counted(text), depth(&v), "{text:?}");
    }
}

#[test]
fn a_deep_document_is_found_early_and_where_it_starts() {
    let text = format!("payload: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = check(&text, MAX_DEPTH).unwrap_err();
    assert_eq!(
        err,
        TooDeep {
            line: 1,
            column: 10 + MAX_DEPTH - 1
        }
    );
    let block: String = (0..200).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
    assert!(check(&block, MAX_DEPTH).is_err());
    let compact = format!("{}x\n", "- ".repeat(200));
    assert!(check(&compact, MAX_DEPTH).is_err());
}

#[test]
fn the_limit_itself_passes() {
    let text = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(check(&text, MAX_DEPTH).is_ok());
    let text = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    assert!(check(&text, MAX_DEPTH).is_err());
}

/// Random documents that are one flow sequence, with scalars full of the
/// characters that could mislead a scanner. Without `:` and `?` indicators
/// (`[a: b]` holds a one-pair mapping the scanner never sees opened) every
/// collection is a bracket, so the count must be exactly the parsed depth:
/// never less (a real bracket missed, and the parser's cost escapes the
/// bound) and never more (a good document refused). With them it is never
/// more.
fn fuzz_flow(seed: u64, pieces: &[&str], exact: bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut parsed = 0;
    for _ in 0..20_000 {
        let n = rng.gen_range(1..20);
        let mut text = String::from("[");
        for _ in 0..n {
            text.push_str(pieces[rng.gen_range(0..pieces.len())]);
        }
        // Random brackets rarely balance: try closing what may be open.
        let Some((text, v)) = (0..6).find_map(|k| {
            let t = format!("{text}{}", "]".repeat(k));
            serde_yaml::from_str::<Value>(&t).ok().map(|v| (t, v))
        }) else {
            continue;
        };
        let top = match &v {
            Value::Tagged(t) => &t.value,
            v => v,
        };
        if !matches!(top, Value::Sequence(_)) {
            continue;
        }
        parsed += 1;
        if exact {
            assert_eq!(counted(&text), depth(&v), "{text:?}");
        } else {
            assert!(counted(&text) <= depth(&v), "{text:?}");
        }
    }
    assert!(parsed > 500, "only {parsed} random documents parsed");
}

const FLOW: &[&str] = &[
    "[", "]", "{", "}", ", ", ",", "\"", "'", "\\", "#", " #", " ", "\n", "\n  ", "a", "b c", "-",
    "- ", "!t ", "&a ", "*a", "|", ">", "%", "@", "\t", "''", "\"]\"", "'['", "x]", "{a: [", "]}",
    "---", "...", "a:b", "\"k[\"", "'v{'", "\r\n",
];

#[test]
fn flow_documents_count_exactly_what_the_parser_nests() {
    fuzz_flow(10, FLOW, true);
}

#[test]
fn flow_documents_with_pairs_are_never_counted_deeper_than_they_are() {
    let mut pieces = FLOW.to_vec();
    pieces.extend([": ", ":", "? ", "?", "\"k: [\"", "'v: {'"]);
    fuzz_flow(12, &pieces, false);
}

/// Random block documents: the count never exceeds the parsed depth, so no
/// document serde_yaml would accept is refused.
#[test]
fn block_documents_are_never_counted_deeper_than_they_are() {
    let mut rng = StdRng::seed_from_u64(11);
    let pieces = [
        "a: ",
        "a:",
        "- ",
        "-",
        "? ",
        ": ",
        "\n",
        "\n  ",
        "\n    ",
        "\n- ",
        "\n  - ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "\"x [\"",
        "'y {'",
        "# [[ ",
        " #",
        "|\n  [[\n",
        ">\n   {{\n",
        "b",
        "c d",
        "!t ",
        "&a ",
        "*a ",
        "\t",
        "x: [1, 2]",
        "---\n",
    ];
    let mut parsed = 0;
    for _ in 0..20_000 {
        let n = rng.gen_range(1..25);
        let text: String = (0..n)
            .map(|_| pieces[rng.gen_range(0..pieces.len())])
            .collect();
        let Ok(v) = serde_yaml::from_str::<Value>(&text) else {
            continue;
        };
        parsed += 1;
        assert!(counted(&text) <= depth(&v), "{text:?}");
    }
    assert!(parsed > 500, "only {parsed} random documents parsed");
}
