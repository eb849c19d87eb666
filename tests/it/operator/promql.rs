//! PromQL, minimally: the metric names an expression selects (to check that every panel and alert
//! names only metrics the exporters have), and the test of that reader.

use std::collections::BTreeSet;

/// Words of PromQL that are not metric names; those marked `true` are followed by a label list.
const KEYWORDS: &[(&str, bool)] = &[
    ("by", true),
    ("without", true),
    ("on", true),
    ("ignoring", true),
    ("group_left", true),
    ("group_right", true),
    ("and", false),
    ("or", false),
    ("unless", false),
    ("offset", false),
    ("bool", false),
    ("atan2", false),
    ("inf", false),
    ("nan", false),
];

/// The metric names a PromQL expression selects: identifiers outside label matchers, ranges,
/// strings and label lists that are neither keywords nor function or aggregation names (those
/// are followed by a parenthesis, or `by`/`without`).
pub(super) fn metric_names(expr: &str) -> BTreeSet<String> {
    let b = expr.as_bytes();
    let mut names = BTreeSet::new();
    let mut label_list = false;
    let mut i = 0;
    let skip_string = |mut i: usize| {
        let quote = b[i];
        i += 1;
        while i < b.len() && b[i] != quote {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        i + 1
    };
    let skip_to = |mut i: usize, close: u8| {
        while i < b.len() && b[i] != close {
            i = if matches!(b[i], b'"' | b'\'' | b'`') {
                skip_string(i)
            } else {
                i + 1
            };
        }
        i + 1
    };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'(' && label_list {
            label_list = false;
            i = skip_to(i, b')');
            continue;
        }
        label_list = false;
        match c {
            b'"' | b'\'' | b'`' => i = skip_string(i),
            b'{' => i = skip_to(i, b'}'),
            b'[' => i = skip_to(i, b']'),
            b'0'..=b'9' | b'.' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &expr[start..i];
                let rest = expr[i..].trim_start();
                let next_word: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // A function or an aggregation: `name(`, `sum by (`, `sum without (`.
                let call = rest.starts_with('(') || ["by", "without"].contains(&next_word.as_str());
                if let Some((_, list)) = KEYWORDS.iter().find(|(k, _)| k.eq_ignore_ascii_case(word))
                {
                    label_list = *list;
                } else if !call {
                    names.insert(word.to_string());
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"(a_total{x="}b", y=~"c|d"} < on(instance, kind) group_left() e) and on(instance) (f - time() < 0.25 * g:h)"#
        ),
        ["a_total", "e", "f", "g:h"]
    );
    assert_eq!(
        names("sum by (instance, le) (rate(x_bucket[5m] offset 1h)) / 1e18 > bool 2 or vector(0)"),
        ["x_bucket"]
    );
    assert_eq!(
        names("sum(rate(y[1m])) without (unit) unless z"),
        ["y", "z"]
    );
    assert_eq!(names("up{job=~\"capminer-.*\"} == 0"), ["up"]);
}
