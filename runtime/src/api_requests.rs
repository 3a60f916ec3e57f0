//! Kubernetes API requests, named and counted the way the API server's audit log names them
//! (verb and resource), by a tower layer on the kube client: every request a process sends is
//! counted, whichever code path sent it, without a call at each site. The benchmarks' counting
//! proxy names requests with the same [`classify`], so the controller's own figures and the
//! proxy's agree.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request};
use tower::{Layer, Service};

/// What one request did.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKind {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or
    /// `discovery` for the API's description of itself (`/api`, `/apis`, `/version`).
    pub verb: &'static str,
    /// `resource[/subresource]`, for example `rollouts/status`; empty for discovery.
    pub resource: String,
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.resource.is_empty() {
            write!(f, "{}", self.verb)
        } else {
            write!(f, "{} {}", self.verb, self.resource)
        }
    }
}

/// The kind of a request with `method` to `path`, whose query is `query`.
pub fn classify(method: &Method, path: &str, query: Option<&str>) -> RequestKind {
    let watch = query.is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    });
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // Past the group-version prefix: /api/v1/... or /apis/<group>/<version>/...
    let rest = match segments.as_slice() {
        ["api", _, rest @ ..] | ["apis", _, _, rest @ ..] => rest,
        _ => &[][..],
    };
    let rest = match rest {
        ["namespaces", _namespace, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [] => {
            return RequestKind {
                verb: "discovery",
                resource: String::new(),
            };
        }
        [resource] => ((*resource).to_owned(), false),
        [resource, _name] => ((*resource).to_owned(), true),
        [resource, _name, subresource, ..] => (format!("{resource}/{subresource}"), true),
    };
    let verb = match *method {
        Method::GET if watch => "watch",
        Method::GET if named => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    RequestKind { verb, resource }
}

/// What the layer calls for each request.
type Count = Arc<dyn Fn(&RequestKind) + Send + Sync>;

/// A tower layer for `kube::client::ClientBuilder::with_layer` that calls `count` with the kind
/// of every request before sending it.
#[derive(Clone)]
pub struct CountRequestsLayer {
    count: Count,
}

impl CountRequestsLayer {
    /// A layer that reports each request's kind to `count` (for example, a metric's `inc`).
    pub fn new(count: impl Fn(&RequestKind) + Send + Sync + 'static) -> Self {
        CountRequestsLayer {
            count: Arc::new(count),
        }
    }
}

impl<S> Layer<S> for CountRequestsLayer {
    type Service = CountRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountRequests {
            inner,
            count: self.count.clone(),
        }
    }
}

/// The service [`CountRequestsLayer`] wraps around the client's.
#[derive(Clone)]
pub struct CountRequests<S> {
    inner: S,
    count: Count,
}

impl<S, B> Service<Request<B>> for CountRequests<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        (self.count)(&classify(
            request.method(),
            request.uri().path(),
            request.uri().query(),
        ));
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn kind(method: Method, path: &str, query: Option<&str>) -> String {
        classify(&method, path, query).to_string()
    }

    #[test]
    fn names_verbs_and_resources_as_the_api_server_does() {
        let rollouts = "/apis/rollgate.io/v1alpha1/namespaces/shop/rollouts";
        assert_eq!(kind(Method::GET, rollouts, None), "list rollouts");
        assert_eq!(
            kind(Method::GET, rollouts, Some("labelSelector=a&watch=true")),
            "watch rollouts"
        );
        assert_eq!(
            kind(Method::GET, &format!("{rollouts}/a"), None),
            "get rollouts"
        );
        assert_eq!(
            kind(
                Method::PATCH,
                &format!("{rollouts}/a/status"),
                Some("fieldManager=x")
            ),
            "patch rollouts/status"
        );
        assert_eq!(
            kind(Method::POST, "/api/v1/namespaces/shop/events", None),
            "create events"
        );
        assert_eq!(
            kind(Method::GET, "/api/v1/namespaces", None),
            "list namespaces"
        );
        assert_eq!(
            kind(Method::GET, "/api/v1/namespaces/shop", None),
            "get namespaces"
        );
        assert_eq!(
            kind(Method::DELETE, rollouts, None),
            "deletecollection rollouts"
        );
        assert_eq!(kind(Method::GET, "/apis", None), "discovery");
        assert_eq!(kind(Method::GET, "/version", None), "discovery");
    }

    #[test]
    fn the_layer_counts_each_request_it_passes_on() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let layer = CountRequestsLayer::new({
            let seen = seen.clone();
            move |kind| seen.lock().unwrap().push(kind.to_string())
        });
        let mut service = layer.layer(tower::service_fn(|_request: Request<()>| async {
            Ok::<_, std::convert::Infallible>(())
        }));
        let request = Request::get("/apis/apps/v1/namespaces/shop/replicasets")
            .body(())
            .unwrap();
        drop(service.call(request));
        assert_eq!(*seen.lock().unwrap(), ["list replicasets"]);
    }
}
