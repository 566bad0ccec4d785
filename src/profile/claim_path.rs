//! [`ClaimPath`]: where in a token's claims a value lives.

use std::fmt;

use serde_json::{Map, Value};

/// Where a value lives in a token's claims: a top-level claim (`roles`), a member of
/// nested objects (`realm_access.roles`), or a claim whose name itself contains `.`
/// or `/` (Auth0's namespaced `https://example.com/roles`).
///
/// A path is a list of **segments**; each segment is one object member name, taken
/// literally. Build one of three ways:
///
/// - [`ClaimPath::new`]: the segments, given explicitly. Nothing is parsed.
/// - [`ClaimPath::claim`]: one top-level claim, whatever characters its name holds.
/// - [`ClaimPath::parse`] (also `From<&str>` / `From<String>`, which every `with_*`
///   taking a claim path uses): the **dotted form**, read as follows.
///   1. A string that starts with `http://`, `https://` or `urn:` is one segment,
///      taken verbatim (dots, slashes and backslashes included): URL-like names are
///      namespaced claim names, never paths.
///   2. Otherwise `.` separates segments, and `\` escapes the character after it:
///      `\.` is a literal dot, `\\` a literal backslash (a `\` at the very end is
///      kept as is). `/` is an ordinary character.
///
///   Every string parses; an empty segment (`a..b`) names a member called `""`.
///
/// | dotted form | segments |
/// |---|---|
/// | `roles` | `roles` |
/// | `realm_access.roles` | `realm_access`, `roles` |
/// | `resource_access.my-api.roles` | `resource_access`, `my-api`, `roles` |
/// | `https://example.com/roles` | `https://example.com/roles` |
/// | `app\.v2.roles` | `app.v2`, `roles` |
/// | `org/roles` | `org/roles` |
///
/// Reading a path walks object members; a path that meets a missing member or a
/// value that is not an object before its last segment finds nothing.
///
/// # Example
///
/// ```
/// use tower_stepup::ClaimPath;
///
/// let nested = ClaimPath::parse("realm_access.roles");
/// assert_eq!(nested.segments(), ["realm_access", "roles"]);
/// let auth0 = ClaimPath::parse("https://example.com/roles");
/// assert_eq!(auth0.segments(), ["https://example.com/roles"]);
/// // A Keycloak client id with a dot in it: give the segments.
/// let client = ClaimPath::new(["resource_access", "api.example.com", "roles"]);
/// assert_eq!(client.to_string(), r"resource_access.api\.example\.com.roles");
/// assert_eq!(ClaimPath::parse(&client.to_string()), client);
///
/// let claims = serde_json::json!({"realm_access": {"roles": ["admin"]}});
/// assert_eq!(nested.find(claims.as_object().unwrap()), Some(&serde_json::json!(["admin"])));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimPath {
    segments: Vec<String>,
}

/// Prefixes that make a string one literal segment (namespaced claim names).
const URL_LIKE: [&str; 3] = ["http://", "https://", "urn:"];

impl ClaimPath {
    /// A path made of these segments, each one object member name taken literally.
    /// No segments at all names nothing: such a path never finds a value.
    pub fn new<I, S>(segments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self { segments: segments.into_iter().map(Into::into).collect() }
    }

    /// One top-level claim named exactly `name` (dots and slashes included).
    pub fn claim(name: impl Into<String>) -> Self {
        Self { segments: vec![name.into()] }
    }

    /// Reads the dotted form (see the [type docs](Self)). Never fails.
    pub fn parse(dotted: &str) -> Self {
        if URL_LIKE.iter().any(|prefix| dotted.starts_with(prefix)) {
            return Self::claim(dotted);
        }
        let mut segments = Vec::new();
        let mut current = String::new();
        let mut chars = dotted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.push(chars.next().unwrap_or('\\')),
                '.' => segments.push(std::mem::take(&mut current)),
                other => current.push(other),
            }
        }
        segments.push(current);
        Self { segments }
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The top-level claim name, when the path is exactly one segment.
    pub(crate) fn as_claim(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// The value at this path in `claims`, if every member on the way exists.
    pub fn find<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        let (first, rest) = self.segments.split_first()?;
        let mut value = claims.get(first)?;
        for segment in rest {
            value = value.as_object()?.get(segment)?;
        }
        Some(value)
    }

    /// Takes the value out of `claims`: a top-level claim is removed (so it is not
    /// also a custom claim); a nested value is cloned and left in place.
    pub(crate) fn take(&self, claims: &mut Map<String, Value>) -> Option<Value> {
        match self.as_claim() {
            Some(name) => claims.remove(name),
            None => self.find(claims).cloned(),
        }
    }
}

impl fmt::Display for ClaimPath {
    /// The dotted form: [`parse`](Self::parse) reads it back to the same path,
    /// except a single URL-like segment, which prints verbatim.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.as_claim().filter(|name| URL_LIKE.iter().any(|p| name.starts_with(p))) {
            return f.write_str(name);
        }
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            for c in segment.chars() {
                if c == '.' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl From<&str> for ClaimPath {
    fn from(dotted: &str) -> Self {
        Self::parse(dotted)
    }
}

impl From<String> for ClaimPath {
    fn from(dotted: String) -> Self {
        Self::parse(&dotted)
    }
}

impl From<&String> for ClaimPath {
    fn from(dotted: &String) -> Self {
        Self::parse(dotted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_form() {
        let cases: [(&str, &[&str]); 9] = [
            ("roles", &["roles"]),
            ("realm_access.roles", &["realm_access", "roles"]),
            ("https://example.com/app.roles", &["https://example.com/app.roles"]),
            ("urn:example:roles.v2", &["urn:example:roles.v2"]),
            (r"app\.v2.roles", &["app.v2", "roles"]),
            (r"a\\.b", &["a\\", "b"]),
            ("org/roles", &["org/roles"]),
            ("a..b", &["a", "", "b"]),
            ("trailing\\", &["trailing\\"]),
        ];
        for (dotted, segments) in cases {
            assert_eq!(ClaimPath::parse(dotted).segments(), segments, "{dotted}");
        }
    }

    #[test]
    fn display_round_trips() {
        for path in [
            ClaimPath::new(["a.b", "c\\d", "e"]),
            ClaimPath::claim("https://example.com/roles"),
            ClaimPath::new(["resource_access", "https://api", "roles"]),
            ClaimPath::claim("plain"),
        ] {
            assert_eq!(ClaimPath::parse(&path.to_string()), path, "{path}");
        }
    }

    #[test]
    fn find_walks_objects_only() {
        let claims = serde_json::json!({
            "realm_access": {"roles": ["a"]},
            "flat": "x",
            "https://example.com/roles": ["b"],
        });
        let claims = claims.as_object().cloned().unwrap_or_default();
        assert_eq!(ClaimPath::parse("realm_access.roles").find(&claims), Some(&serde_json::json!(["a"])));
        assert_eq!(ClaimPath::parse("flat.roles").find(&claims), None);
        assert_eq!(ClaimPath::parse("missing.roles").find(&claims), None);
        assert_eq!(ClaimPath::parse("https://example.com/roles").find(&claims), Some(&serde_json::json!(["b"])));
        assert_eq!(ClaimPath::new(Vec::<String>::new()).find(&claims), None);
    }
}
