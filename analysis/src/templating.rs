//! Templating of queries: `{{args.<name>}}`, `{{revision.canary}}` and `{{revision.stable}}`
//! (spaces inside the braces are allowed). Anything else between `{{` and `}}` is refused with
//! the placeholder's name, so a typo never sends a query with a literal `{{...}}` to
//! Prometheus; so is an argument without a value, and `{{revision.stable}}` when there is no
//! stable revision.
//!
//! Values are inserted as they are: they come from the Rollout's spec and the revision hashes,
//! which the cluster's RBAC already trusts to define the queries.

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
}

/// Replaces every placeholder in `query`.
pub fn render(query: &str, bindings: &Bindings<'_>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    let mut offset = 0;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or(TemplateError::Unclosed(offset + start))?;
        let name = after[..end].trim();
        out.push_str(&resolve(name, bindings)?);
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

    #[test]
    fn an_unclosed_placeholder_is_refused() {
        let args = args();
        assert_eq!(
            render("ab{{args.service", &bindings(&args)).unwrap_err(),
            TemplateError::Unclosed(2)
        );
    }
}
