//! The Prometheus addresses the service may query, set by the operator
//! (`--prometheus-allowed`): without it the service would be an open proxy, sending whatever
//! HTTP request a caller names to any host its network reaches.
//!
//! An entry is a base URL, `http://prometheus.monitoring:9090` or
//! `http://thanos-query.monitoring:9090/prefix`; `*` as the port allows any port of that host
//! (for test setups that start Prometheus on a free port). An address matches an entry when
//! scheme, host, port and path (without trailing slashes) are the same; user info, a query
//! string or a fragment never match. An empty list allows nothing.

use reqwest::Url;

/// One allowed base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    scheme: String,
    host: String,
    /// `None`: any port.
    port: Option<u16>,
    path: String,
}

/// The allowed Prometheus addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<Entry>,
}

impl AllowList {
    /// The list from the operator's entries; an entry that is not a base URL is an error naming it.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let entries = entries
            .iter()
            .map(|entry| entry.as_ref().trim())
            .filter(|entry| !entry.is_empty())
            .map(parse_entry)
            .collect::<Result<_, _>>()?;
        Ok(AllowList { entries })
    }

    /// Whether the list allows nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `address` may be queried.
    pub fn allows(&self, address: &str) -> bool {
        let Ok(url) = Url::parse(address.trim()) else {
            return false;
        };
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return false;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        let port = url.port_or_known_default();
        let path = url.path().trim_end_matches('/');
        self.entries.iter().any(|entry| {
            entry.scheme == url.scheme()
                && entry.host == host
                && entry.port.is_none_or(|allowed| Some(allowed) == port)
                && entry.path == path
        })
    }
}

fn parse_entry(text: &str) -> Result<Entry, String> {
    let (text, any_port) = match text.split_once(":*") {
        Some((before, after)) => (format!("{before}{after}"), true),
        None => (text.to_owned(), false),
    };
    let url = Url::parse(&text)
        .map_err(|error| format!("--prometheus-allowed entry {text:?} is not a URL: {error}"))?;
    let Some(host) = url.host_str() else {
        return Err(format!("--prometheus-allowed entry {text:?} names no host"));
    };
    if url.query().is_some() || !url.username().is_empty() {
        return Err(format!(
            "--prometheus-allowed entry {text:?} must be a base URL (no user, no query)"
        ));
    }
    Ok(Entry {
        scheme: url.scheme().to_owned(),
        host: host.to_owned(),
        port: if any_port {
            None
        } else {
            url.port_or_known_default()
        },
        path: url.path().trim_end_matches('/').to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_base_urls_match() {
        let list = AllowList::parse(&[
            "http://prometheus.monitoring:9090",
            "http://thanos:9090/prefix/",
        ])
        .unwrap();
        assert!(list.allows("http://prometheus.monitoring:9090"));
        assert!(list.allows("http://prometheus.monitoring:9090/"));
        assert!(list.allows("http://thanos:9090/prefix"));
        for refused in [
            "http://prometheus.monitoring:9091",
            "https://prometheus.monitoring:9090",
            "http://prometheus.monitoring:9090/other",
            "http://prometheus.monitoring.evil:9090",
            "http://user@prometheus.monitoring:9090",
            "http://prometheus.monitoring:9090/?x=1",
            "http://198.18.0.1:9090",
            "http://169.254.169.254/latest/meta-data",
            "not a url",
        ] {
            assert!(!list.allows(refused), "{refused}");
        }
    }

    #[test]
    fn a_star_port_allows_any_port_of_that_host_only() {
        let list = AllowList::parse(&["http://127.0.0.1:*"]).unwrap();
        assert!(list.allows("http://127.0.0.1:41234"));
        assert!(list.allows("http://127.0.0.1"));
        assert!(!list.allows("http://127.0.0.2:41234"));
        assert!(!list.allows("http://127.0.0.1:41234/api/v1/admin"));
    }

    #[test]
    fn an_empty_list_allows_nothing_and_a_bad_entry_is_named() {
        let empty = AllowList::parse::<&str>(&[]).unwrap();
        assert!(empty.is_empty());
        assert!(!empty.allows("http://127.0.0.1:9090"));
        let error = AllowList::parse(&["prometheus:9090:x"]).unwrap_err();
        assert!(error.contains("prometheus:9090:x"), "{error}");
    }
}
