//! Kubernetes label selector strings (`app=web,tier!=db,env in (a,b),!legacy`), parsed into
//! kube's [`Selector`] so cached objects can be matched without asking the API server.
//!
//! The grammar is the API server's: requirements separated by commas, each one of `key`,
//! `!key`, `key=value`, `key==value`, `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`.

use std::collections::BTreeSet;

use kube::core::{Expression, Selector};

/// Why a selector string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label_selector: {0}")]
pub struct SelectorError(String);

/// The selector of `text`; the empty string selects everything.
pub fn parse(text: &str) -> Result<Selector, SelectorError> {
    let mut expressions = Vec::new();
    for requirement in split_requirements(text)? {
        expressions.push(requirement_of(requirement.trim())?);
    }
    Ok(Selector::from_iter(expressions))
}

/// Splits at the commas outside parentheses; no requirement is empty.
fn split_requirements(text: &str) -> Result<Vec<&str>, SelectorError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (index, character) in text.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| SelectorError(format!("unbalanced ')' in {text:?}")))?
            }
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError(format!("unbalanced '(' in {text:?}")));
    }
    parts.push(&text[start..]);
    if let Some(empty) = parts.iter().position(|part| part.trim().is_empty()) {
        return Err(SelectorError(format!(
            "empty requirement at position {} of {text:?}",
            empty + 1
        )));
    }
    Ok(parts)
}

fn requirement_of(text: &str) -> Result<Expression, SelectorError> {
    if let Some(key) = text.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(key_of(key.trim())?));
    }
    if let Some((key, value)) = text.split_once("!=") {
        return Ok(Expression::NotEqual(key_of(key.trim())?, value_of(value)?));
    }
    if let Some((key, value)) = text.split_once('=') {
        let value = value.strip_prefix('=').unwrap_or(value);
        return Ok(Expression::Equal(key_of(key.trim())?, value_of(value)?));
    }
    let mut words = text.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default();
    let Some(rest) = words.next().map(str::trim) else {
        return Ok(Expression::Exists(key_of(key)?));
    };
    let open = rest
        .find('(')
        .ok_or_else(|| SelectorError(format!("expected (v1,v2,...) in {text:?}")))?;
    let operator = rest[..open].trim();
    let values = set_of(rest[open..].trim(), text)?;
    match operator {
        "in" => Ok(Expression::In(key_of(key)?, values)),
        "notin" => Ok(Expression::NotIn(key_of(key)?, values)),
        other => Err(SelectorError(format!(
            "unknown operator {other:?} in {text:?} (expected in or notin)"
        ))),
    }
}

fn set_of(set: &str, requirement: &str) -> Result<BTreeSet<String>, SelectorError> {
    let inner = set
        .strip_prefix('(')
        .and_then(|set| set.strip_suffix(')'))
        .ok_or_else(|| SelectorError(format!("expected (v1,v2,...) in {requirement:?}")))?;
    inner.split(',').map(value_of).collect()
}

fn key_of(key: &str) -> Result<String, SelectorError> {
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    let name_ok = !name.is_empty() && name.len() <= 63 && is_label_text(name);
    let prefix_ok = prefix.len() <= 253
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'));
    if name_ok && prefix_ok && (key.rsplit_once('/').is_none() || !prefix.is_empty()) {
        Ok(key.to_owned())
    } else {
        Err(SelectorError(format!("invalid label key {key:?}")))
    }
}

fn value_of(value: &str) -> Result<String, SelectorError> {
    let value = value.trim();
    if value.len() <= 63 && (value.is_empty() || is_label_text(value)) {
        Ok(value.to_owned())
    } else {
        Err(SelectorError(format!("invalid label value {value:?}")))
    }
}

fn is_label_text(text: &str) -> bool {
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    edge(text.bytes().next())
        && edge(text.bytes().last())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::core::SelectorExt;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_operator_parses_and_matches() {
        let selector =
            parse("app=web, tier!=db,env in (prod, staging),track notin (canary),team,!legacy")
                .unwrap();
        let matching = labels(&[("app", "web"), ("env", "prod"), ("team", "a")]);
        assert!(selector.matches(&matching));
        let mut legacy = matching.clone();
        legacy.insert("legacy".into(), "yes".into());
        assert!(!selector.matches(&legacy));
        let mut db = matching.clone();
        db.insert("tier".into(), "db".into());
        assert!(!selector.matches(&db));
        let mut canary = matching.clone();
        canary.insert("track".into(), "canary".into());
        assert!(!selector.matches(&canary));
        assert!(!selector.matches(&labels(&[("app", "web"), ("team", "a")])));
        assert!(
            parse("app==web")
                .unwrap()
                .matches(&labels(&[("app", "web")]))
        );
        assert!(
            parse("rollgate.io/rollout=web")
                .unwrap()
                .matches(&labels(&[("rollgate.io/rollout", "web")]))
        );
    }

    #[test]
    fn empty_selects_everything() {
        assert!(parse("").unwrap().matches(&labels(&[])));
        assert!(parse("  ").unwrap().selects_all());
    }

    #[test]
    fn bad_selectors_name_the_field() {
        for bad in [
            "app=",
            "=web",
            "app in web",
            "app in (a",
            "app)",
            "a,,b",
            "app foo (a)",
            "App_=x",
            "a=b c",
            "/x=y",
        ] {
            let error = parse(bad);
            if bad == "app=" {
                // An empty value is valid: it selects labels whose value is empty.
                assert!(error.is_ok());
                continue;
            }
            let error = error.expect_err(bad);
            assert!(error.to_string().starts_with("label_selector: "), "{bad}");
        }
    }
}
