//! Route table: `"GET /users/{id}"` → function, built once at boot.
//!
//! Matching is done by `matchit` (a radix tree), per method plus one table
//! for `ANY`, so a lookup costs a few hundred nanoseconds however many routes
//! there are.

use http::Method;
use std::collections::HashMap;

/// The result of routing one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// The index of the function that serves it, and the route's captured parameters.
    Found {
        /// Index into [`crate::Host::functions`].
        function: usize,
        /// `{param}` captures in order of appearance.
        params: Vec<(String, String)>,
    },
    /// The path exists, but not for this method (405).
    MethodNotAllowed,
    /// No route has this path (404).
    NotFound,
}

/// Routes of all functions.
#[derive(Default)]
pub struct Router {
    by_method: HashMap<Method, matchit::Router<usize>>,
    any: matchit::Router<usize>,
}

/// Why a route cannot be added.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RouteError(String);

impl Router {
    /// Adds `method path` → `function`; `None` means any method.
    pub fn insert(&mut self, method: Option<&Method>, path: &str, function: usize) -> Result<(), RouteError> {
        let table = match method {
            Some(m) => self.by_method.entry(m.clone()).or_default(),
            None => &mut self.any,
        };
        table.insert(path, function).map_err(|e| RouteError(e.to_string()))
    }

    /// Finds the function for a request.
    pub fn route(&self, method: &Method, path: &str) -> RouteMatch {
        let found = |m: matchit::Match<'_, '_, &usize>| RouteMatch::Found {
            function: *m.value,
            params: m.params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        if let Some(m) = self.by_method.get(method).and_then(|t| t.at(path).ok()) {
            return found(m);
        }
        // HEAD is answered by GET routes, as every HTTP server does.
        if method == Method::HEAD
            && let Some(m) = self.by_method.get(&Method::GET).and_then(|t| t.at(path).ok())
        {
            return found(m);
        }
        if let Ok(m) = self.any.at(path) {
            return found(m);
        }
        if self.by_method.values().any(|t| t.at(path).is_ok()) {
            return RouteMatch::MethodNotAllowed;
        }
        RouteMatch::NotFound
    }
}

/// Checks route path syntax without building a table.
pub fn check_path(path: &str) -> Result<(), RouteError> {
    let mut r = matchit::Router::new();
    r.insert(path, ()).map_err(|e| RouteError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_method_then_any() {
        let mut r = Router::default();
        r.insert(Some(&Method::GET), "/hello", 0).unwrap();
        r.insert(None, "/hello/{*rest}", 1).unwrap();
        r.insert(Some(&Method::POST), "/users/{id}", 2).unwrap();
        assert_eq!(
            r.route(&Method::GET, "/hello"),
            RouteMatch::Found {
                function: 0,
                params: vec![]
            }
        );
        assert_eq!(
            r.route(&Method::HEAD, "/hello"),
            RouteMatch::Found {
                function: 0,
                params: vec![]
            }
        );
        assert_eq!(
            r.route(&Method::DELETE, "/hello/a/b"),
            RouteMatch::Found {
                function: 1,
                params: vec![("rest".into(), "a/b".into())]
            }
        );
        assert_eq!(
            r.route(&Method::POST, "/users/7"),
            RouteMatch::Found {
                function: 2,
                params: vec![("id".into(), "7".into())]
            }
        );
        assert_eq!(r.route(&Method::GET, "/users/7"), RouteMatch::MethodNotAllowed);
        assert_eq!(r.route(&Method::GET, "/nope"), RouteMatch::NotFound);
    }

    #[test]
    fn conflicting_routes_are_errors() {
        let mut r = Router::default();
        r.insert(Some(&Method::GET), "/a", 0).unwrap();
        assert!(r.insert(Some(&Method::GET), "/a", 1).is_err());
        assert!(check_path("/x/{").is_err());
    }
}
