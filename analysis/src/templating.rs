//! Templating of queries: `{{args.<name>}}`, `{{revision.canary}}` and `{{revision.stable}}`
//! (spaces inside the braces are allowed). Anything else between `{{` and `}}` is refused with
//! the placeholder's name, so a typo never sends a query with a literal `{{...}}` to
//! Prometheus; so is an argument without a value, and `{{revision.stable}}` when there is no
//! stable revision.
//!
//! # Values cannot change a query's meaning
//!
//! A template is platform-owned (an AnalysisTemplate) while argument values come from each
//! Rollout, whose owner must not be able to turn `x{service="{{args.service}}"}` into another
//! query (PromQL injection, for example the value `x"} or vector(1) #`). So a value is inserted
//! according to where its placeholder stands, which the renderer tracks while scanning the
//! template:
//!
//! - inside a `"..."` or `'...'` string literal, the value is escaped as that literal's content
//!   (`\`, the quote, and control characters as `\n`, `\t`, `\xHH`), so any value stays one
//!   string: the label matcher compares against it and nothing else;
//! - inside a `` `...` `` raw string, which has no escapes, a value containing a backtick is
//!   refused;
//! - anywhere else (a number, a duration, a name), the value must be a bare token of
//!   `[A-Za-z0-9_.:]` (for example `0.05`, `5m`, `checkout`), else it is refused with
//!   [`TemplateError::UnsafeValue`] naming the placeholder.

use std::collections::HashMap;

/// The values a query can reference.
#[derive(Debug, Clone, Copy)]
pub struct Bindings<'a> {
    /// Values of `{{args.<name>}}`.
    pub args: &'a HashMap<String, String>,
    /// Value of `{{revision.canary}}`.
    pub canary: &'a str,
    /// Value of `{{revision.stable}}`; empty when there is none.
    pub stable: &'a str,
}

/// Why a query could not be templated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A placeholder that is neither `args.<name>` nor `revision.canary|stable`.
    #[error(
        "unknown placeholder {{{{{0}}}}}: use {{{{args.<name>}}}}, {{{{revision.canary}}}} or {{{{revision.stable}}}}"
    )]
    UnknownPlaceholder(String),
    /// `{{args.<name>}}` without a value for `<name>`.
    #[error("no value for argument {0:?} (placeholder {{{{args.{0}}}}})")]
    MissingArgument(String),
    /// A revision placeholder whose revision is not known.
    #[error("placeholder {{{{revision.{0}}}}} has no value: the request names no {0} revision")]
    MissingRevision(&'static str),
    /// `{{` without a closing `}}`.
    #[error("unclosed placeholder at byte {0}: `{{{{` without `}}}}`")]
    Unclosed(usize),
    /// A value that would change the query where its placeholder stands.
    #[error(
        "the value of {{{{{placeholder}}}}} is refused: {why} (the value {value:?} would change the query)"
    )]
    UnsafeValue {
        /// The placeholder.
        placeholder: String,
        /// The value.
        value: String,
        /// What is allowed there.
        why: &'static str,
    },
}

/// Where in PromQL the scanner stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Outside any string literal.
    Code,
    /// Inside a string literal opened by this quote (`"` or `'`).
    Quoted(char),
    /// Inside a `` ` `` raw string.
    Raw,
    /// Inside a `#` comment (to the end of the line).
    Comment,
}

/// The context after `text`, starting in `context`.
fn advance(mut context: Context, text: &str) -> Context {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        context = match (context, c) {
            (Context::Code, '"' | '\'') => Context::Quoted(c),
            (Context::Code, '`') => Context::Raw,
            (Context::Code, '#') => Context::Comment,
            (Context::Quoted(_), '\\') => {
                chars.next();
                context
            }
            (Context::Quoted(quote), c) if c == quote => Context::Code,
            (Context::Raw, '`') | (Context::Comment, '\n') => Context::Code,
            _ => context,
        };
    }
    context
}

/// `value` as it may stand in `context`.
fn insert(context: Context, placeholder: &str, value: &str) -> Result<String, TemplateError> {
    let refuse = |why| TemplateError::UnsafeValue {
        placeholder: placeholder.to_owned(),
        value: value.to_owned(),
        why,
    };
    match context {
        Context::Quoted(quote) => Ok(escape(value, quote)),
        Context::Raw if value.contains('`') => {
            Err(refuse("a backtick cannot stand in a raw string"))
        }
        Context::Raw => Ok(value.to_owned()),
        Context::Code | Context::Comment => {
            let bare = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':'));
            if bare {
                Ok(value.to_owned())
            } else {
                Err(refuse(
                    "outside a string literal only [A-Za-z0-9_.:] may stand (quote the placeholder in the template for any other text)",
                ))
            }
        }
    }
}

/// `value` escaped as the content of a PromQL string literal quoted with `quote`.
fn escape(value: &str, quote: char) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\t' => escaped.push_str("\\t"),
            '\r' => escaped.push_str("\\r"),
            c if c == quote => {
                escaped.push('\\');
                escaped.push(c);
            }
            c if c.is_control() => escaped.push_str(&format!("\\x{:02x}", u32::from(c) & 0xff)),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Replaces every placeholder in `query`.
pub fn render(query: &str, bindings: &Bindings<'_>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    let mut offset = 0;
    let mut context = Context::Code;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        context = advance(context, &rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or(TemplateError::Unclosed(offset + start))?;
        let name = after[..end].trim();
        let value = resolve(name, bindings)?;
        out.push_str(&insert(context, name, &value)?);
        let consumed = start + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(name: &str, bindings: &Bindings<'_>) -> Result<String, TemplateError> {
    if let Some(arg) = name.strip_prefix("args.") {
        return bindings
            .args
            .get(arg)
            .cloned()
            .ok_or_else(|| TemplateError::MissingArgument(arg.to_owned()));
    }
    let (which, value) = match name {
        "revision.canary" => ("canary", bindings.canary),
        "revision.stable" => ("stable", bindings.stable),
        _ => return Err(TemplateError::UnknownPlaceholder(name.to_owned())),
    };
    if value.is_empty() {
        return Err(TemplateError::MissingRevision(which));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindings(args: &HashMap<String, String>) -> Bindings<'_> {
        Bindings {
            args,
            canary: "abc123",
            stable: "def456",
        }
    }

    fn args() -> HashMap<String, String> {
        HashMap::from([("service".to_owned(), "checkout".to_owned())])
    }

    #[test]
    fn replaces_args_and_revisions() {
        let args = args();
        let query = r#"sum(rate(x{svc="{{args.service}}",rev="{{ revision.canary }}"}[1m])) / on() x{rev="{{revision.stable}}"}"#;
        assert_eq!(
            render(query, &bindings(&args)).unwrap(),
            r#"sum(rate(x{svc="checkout",rev="abc123"}[1m])) / on() x{rev="def456"}"#
        );
    }

    #[test]
    fn a_query_without_placeholders_is_unchanged() {
        let args = args();
        assert_eq!(render("up", &bindings(&args)).unwrap(), "up");
        assert_eq!(
            render("x{a=\"}}\"}", &bindings(&args)).unwrap(),
            "x{a=\"}}\"}"
        );
    }

    #[test]
    fn unknown_placeholders_are_named() {
        let args = args();
        let error = render("x{{revision.baseline}}", &bindings(&args)).unwrap_err();
        assert_eq!(
            error,
            TemplateError::UnknownPlaceholder("revision.baseline".into())
        );
        assert!(
            error.to_string().contains("{{revision.baseline}}"),
            "{error}"
        );
        assert_eq!(
            render("{{ foo }}", &bindings(&args)).unwrap_err(),
            TemplateError::UnknownPlaceholder("foo".into())
        );
    }

    #[test]
    fn missing_values_are_named() {
        let args = args();
        let error = render("{{args.namespace}}", &bindings(&args)).unwrap_err();
        assert_eq!(error, TemplateError::MissingArgument("namespace".into()));
        assert!(error.to_string().contains("{{args.namespace}}"), "{error}");
        let no_stable = Bindings {
            stable: "",
            ..bindings(&args)
        };
        assert_eq!(
            render("{{revision.stable}}", &no_stable).unwrap_err(),
            TemplateError::MissingRevision("stable")
        );
    }

    fn with_service(value: &str) -> HashMap<String, String> {
        HashMap::from([("service".to_owned(), value.to_owned())])
    }

    #[test]
    fn a_value_in_a_string_literal_stays_one_string() {
        let injection = r#"x"} or vector(1) #"#;
        let args = with_service(injection);
        let query = r#"sum(rate(x{svc="{{args.service}}"}[1m]))"#;
        assert_eq!(
            render(query, &bindings(&args)).unwrap(),
            r#"sum(rate(x{svc="x\"} or vector(1) #"}[1m]))"#
        );
        let single = "x{svc='{{args.service}}'}";
        let args = with_service(r"it's\n");
        assert_eq!(
            render(single, &bindings(&args)).unwrap(),
            r"x{svc='it\'s\\n'}"
        );
        let args = with_service("a\nb\u{7}");
        assert_eq!(
            render(r#"x{svc="{{args.service}}"}"#, &bindings(&args)).unwrap(),
            r#"x{svc="a\nb\x07"}"#
        );
    }

    #[test]
    fn a_value_outside_a_string_must_be_a_bare_token() {
        let query = "rate(x[{{args.service}}]) > 0";
        assert_eq!(
            render(query, &bindings(&with_service("5m"))).unwrap(),
            "rate(x[5m]) > 0"
        );
        for bad in ["5m]) or vector(1", "1 + 1", "", "x\"", "a{b}"] {
            let error = render(query, &bindings(&with_service(bad))).unwrap_err();
            assert!(
                matches!(&error, TemplateError::UnsafeValue { placeholder, .. } if placeholder == "args.service"),
                "{bad:?}: {error}"
            );
        }
        // A quote before the placeholder that was closed again leaves the code context.
        let closed = r#"x{a="b"} > {{args.service}}"#;
        assert!(render(closed, &bindings(&with_service("x\" or"))).is_err());
        // An escaped quote inside a literal does not close it.
        let escaped = r#"x{a="b\"{{args.service}}"}"#;
        assert_eq!(
            render(escaped, &bindings(&with_service("c d"))).unwrap(),
            r#"x{a="b\"c d"}"#
        );
    }

    #[test]
    fn a_raw_string_refuses_a_backtick() {
        let query = "x{a=~`{{args.service}}`}";
        assert_eq!(
            render(query, &bindings(&with_service("a|b"))).unwrap(),
            "x{a=~`a|b`}"
        );
        assert!(render(query, &bindings(&with_service("a`} or vector(1)"))).is_err());
    }

    #[test]
    fn an_unclosed_placeholder_is_refused() {
        let args = args();
        assert_eq!(
            render("ab{{args.service", &bindings(&args)).unwrap_err(),
            TemplateError::Unclosed(2)
        );
    }
}
