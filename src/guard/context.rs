//! Context-bound sessions: [`Requirement::same_context`](crate::Requirement::same_context)
//! compares where a session began (its [`SessionAttributes`]) with where the request
//! comes from, and tells the app when they differ.
//!
//! One concern per piece: [`SameContext`] is the configuration (prefix tolerance,
//! trusted proxies, the hook), [`RequestContext`] is what a request shows, and
//! [`compare`] is the verdict requirements use.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use http::{Extensions, HeaderMap};

use crate::error::ConfigError;
use crate::session::{Session, SessionAttributes};

/// Default tolerance for IPv4: the same `/24` counts as the same network.
pub const DEFAULT_IPV4_PREFIX: u8 = 24;
/// Default tolerance for IPv6: the same `/64` (one subnet, what one home or office
/// line gets) counts as the same network.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// How long a reported mismatch is not reported again (same session, same network,
/// same user agent), so that a stolen cookie replayed in a loop cannot make the app
/// email its owner a thousand times.
const NOTIFY_QUIET: Duration = Duration::from_secs(3600);
/// Distinct mismatches remembered for [`NOTIFY_QUIET`].
const NOTIFY_CAPACITY: u64 = 100_000;

type Hook = Arc<dyn Fn(&ContextMismatch) + Send + Sync>;

/// How [`Requirement::same_context`](crate::Requirement::same_context) compares a
/// request with where its session began. Set on the layer with
/// [`GuardConfig::with_same_context`](crate::GuardConfig::with_same_context).
///
/// - **Network**: the request's client address must lie in the same `/24` (IPv4) or
///   `/64` (IPv6) as the address the session began from
///   ([`with_ipv4_prefix`](Self::with_ipv4_prefix),
///   [`with_ipv6_prefix`](Self::with_ipv6_prefix)). IPv4-mapped IPv6 addresses
///   count as IPv4; an IPv4 and an IPv6 address never match.
/// - **User agent**: the request's `User-Agent` must equal the recorded one exactly
///   (a browser update changes it: the user steps up once). Turn it off with
///   [`without_user_agent`](Self::without_user_agent).
/// - **Client address**: the peer address of the connection (axum's
///   `ConnectInfo<SocketAddr>`: serve with
///   `into_make_service_with_connect_info::<SocketAddr>()`, or `MockConnectInfo` in
///   tests; other tower stacks may insert a `std::net::SocketAddr` extension). `X-Forwarded-For` is read **only**
///   when the peer is one of the [trusted proxies](Self::with_trusted_proxies):
///   by default a client cannot claim another address with a header.
/// - **Not recorded**: a session without a recorded address (or user agent, when
///   compared) never matches, and is asked to step up like a mismatch: fail closed.
///   [`allow_unrecorded`](Self::allow_unrecorded) lets such sessions through.
///
/// # Example
///
/// ```
/// use tower_stepup::{GuardConfig, SameContext};
///
/// let config = GuardConfig::default().with_same_context(
///     SameContext::default()
///         .with_ipv4_prefix(16)
///         .with_trusted_proxies(["10.0.0.0/8"])
///         .on_mismatch(|mismatch| {
///             // e.g. queue an "unrecognized sign-in" email to the user
///             tracing::info!(user = %mismatch.subject, differs = ?mismatch.differs, "new context");
///         }),
/// );
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone)]
#[must_use]
pub struct SameContext {
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    user_agent: bool,
    allow_unrecorded: bool,
    trusted_proxies: Vec<Network>,
    /// The first trusted-proxy entry that did not parse, for `validate`.
    invalid: Option<String>,
    hook: Option<Hook>,
    notified: moka::sync::Cache<u64, ()>,
}

impl Default for SameContext {
    fn default() -> Self {
        Self {
            ipv4_prefix: DEFAULT_IPV4_PREFIX,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            user_agent: true,
            allow_unrecorded: false,
            trusted_proxies: Vec::new(),
            invalid: None,
            hook: None,
            notified: moka::sync::Cache::builder().max_capacity(NOTIFY_CAPACITY).time_to_live(NOTIFY_QUIET).build(),
        }
    }
}

impl fmt::Debug for SameContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SameContext")
            .field("ipv4_prefix", &self.ipv4_prefix)
            .field("ipv6_prefix", &self.ipv6_prefix)
            .field("user_agent", &self.user_agent)
            .field("allow_unrecorded", &self.allow_unrecorded)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("hook", &self.hook.is_some())
            .finish_non_exhaustive()
    }
}

impl SameContext {
    /// The IPv4 prefix length that counts as one network (default
    /// [`DEFAULT_IPV4_PREFIX`], `/24`; `32` for the exact address; at most 32).
    pub fn with_ipv4_prefix(mut self, bits: u8) -> Self {
        self.ipv4_prefix = bits;
        self
    }
    /// The IPv6 prefix length that counts as one network (default
    /// [`DEFAULT_IPV6_PREFIX`], `/64`; at most 128).
    pub fn with_ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits;
        self
    }
    /// Compares the network only, not the `User-Agent`.
    pub fn without_user_agent(mut self) -> Self {
        self.user_agent = false;
        self
    }
    /// Lets sessions that recorded no context (no address, or no user agent when it
    /// is compared) through `same_context` routes, with a `tracing::debug!` line per
    /// request. What *was* recorded is still compared.
    ///
    /// # ⚠️ Warning
    ///
    /// Fails open for exactly the sessions nothing is known about: Stytch B2B member
    /// sessions from the API, OIDC tokens without the configured claims, Stytch
    /// sessions started by a backend that passed no `attributes`. Only for a
    /// migration period.
    pub fn allow_unrecorded(mut self) -> Self {
        self.allow_unrecorded = true;
        self
    }
    /// Proxies whose `X-Forwarded-For` is believed: addresses (`192.0.2.10`,
    /// `2001:db8::1`) or networks (`10.0.0.0/8`, `fd00::/8`). Checked by
    /// [`GuardConfig::validate`](crate::GuardConfig::validate) (the layer's `build()`).
    ///
    /// When the connection comes from one of them, the client is the right-most
    /// `X-Forwarded-For` entry that is not a trusted proxy (entries to its left were
    /// written by the client and prove nothing). An entry that does not parse, or a
    /// trusted peer that sent no header, leaves the client unknown: the route answers
    /// `403` with a configuration error rather than guess. Default: none (the header
    /// is ignored).
    pub fn with_trusted_proxies(mut self, proxies: impl IntoIterator<Item = impl AsRef<str>>) -> Self {
        for proxy in proxies {
            match Network::parse(proxy.as_ref()) {
                Some(network) => self.trusted_proxies.push(network),
                None => {
                    self.invalid.get_or_insert_with(|| proxy.as_ref().to_owned());
                }
            }
        }
        self
    }
    /// Tells the app when a session is used from another context (to email the user,
    /// as Stytch does on an unrecognized sign-in, or to log it for review).
    ///
    /// Called on the request path once per mismatch: a session seen from one new
    /// network and user agent is reported once per hour however many requests it
    /// sends (also when a `fresh()` route judges it twice), a different network or
    /// user agent again. It carries who and what differed, never a token. Keep it
    /// quick: hand slow work (email) to a task or a queue.
    pub fn on_mismatch(mut self, hook: impl Fn(&ContextMismatch) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(entry) = &self.invalid {
            return Err(ConfigError::invalid("trusted proxy", format!("`{entry}` is not an address or network")));
        }
        if self.ipv4_prefix > 32 {
            return Err(ConfigError::invalid("IPv4 prefix", "at most 32 bits"));
        }
        if self.ipv6_prefix > 128 {
            return Err(ConfigError::invalid("IPv6 prefix", "at most 128 bits"));
        }
        Ok(())
    }

    pub(crate) fn allows_unrecorded(&self) -> bool {
        self.allow_unrecorded
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|network| network.contains(ip))
    }

    fn same_network(&self, a: IpAddr, b: IpAddr) -> bool {
        match (a.to_canonical(), b.to_canonical()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => prefix(u32::from(a).into(), u32::from(b).into(), 32, self.ipv4_prefix),
            (IpAddr::V6(a), IpAddr::V6(b)) => prefix(u128::from(a), u128::from(b), 128, self.ipv6_prefix),
            _ => false,
        }
    }

    /// The network part of `ip` (for de-duplicating reports).
    fn network_of(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4) & mask32(self.ipv4_prefix);
                IpAddr::V4(Ipv4Addr::from(bits))
            }
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask128(self.ipv6_prefix))),
        }
    }

    /// Reports `mismatch` to the hook unless this one was reported recently.
    pub(crate) fn notify(&self, mismatch: &ContextMismatch) {
        let Some(hook) = &self.hook else { return };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        mismatch.session_id.as_deref().unwrap_or(&mismatch.subject).hash(&mut hasher);
        mismatch.observed_ip_address.map(|ip| self.network_of(ip)).hash(&mut hasher);
        mismatch.observed_user_agent.hash(&mut hasher);
        // `entry().or_insert` is atomic: two concurrent requests report once.
        if self.notified.entry(hasher.finish()).or_insert(()).is_fresh() {
            hook(mismatch);
        }
    }
}

fn mask32(bits: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(bits.min(32))).unwrap_or(0)
}

fn mask128(bits: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(bits.min(128))).unwrap_or(0)
}

/// Whether `a` and `b` (of `width` bits) share their first `bits` bits.
fn prefix(a: u128, b: u128, width: u32, bits: u8) -> bool {
    let bits = u32::from(bits).min(width);
    let shift = width - bits;
    // `checked_shr` is `None` for a shift of 128 (a zero-length prefix): all match.
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

/// An address with a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    bits: u8,
}

impl Network {
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (address, bits) = match text.split_once('/') {
            Some((address, bits)) => (address.parse::<IpAddr>().ok()?, Some(bits.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let address = address.to_canonical();
        let width = if address.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(width);
        (bits <= width).then_some(Self { address, bits })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix(u32::from(net).into(), u32::from(ip).into(), 32, self.bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix(u128::from(net), u128::from(ip), 128, self.bits),
            _ => false,
        }
    }
}

/// Where a request comes from, as [`Requirement::same_context`](crate::Requirement::same_context)
/// sees it. Guards build it from the request; build one yourself to judge a
/// requirement outside a guard ([`Requirement::is_met_in`](crate::Requirement::is_met_in)).
///
/// ```
/// use tower_stepup::RequestContext;
///
/// let request = RequestContext::new(Some("198.51.100.4".parse().unwrap()), Some("Mozilla/5.0"));
/// assert_eq!(request.user_agent, Some("Mozilla/5.0"));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestContext<'a> {
    /// The client's address (`None`: unknown).
    pub ip_address: Option<IpAddr>,
    /// The request's `User-Agent` (`None`: not sent, or not text).
    pub user_agent: Option<&'a str>,
}

impl<'a> RequestContext<'a> {
    /// A request from `ip_address` with this `User-Agent`.
    pub fn new(ip_address: Option<IpAddr>, user_agent: Option<&'a str>) -> Self {
        Self { ip_address, user_agent }
    }

    /// The context of a request: its client address (see [`SameContext`]) and
    /// `User-Agent`. Borrows; no allocation.
    pub(crate) fn of(extensions: &Extensions, headers: &'a HeaderMap, config: &SameContext) -> Self {
        let user_agent = headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok());
        Self { ip_address: client_ip(extensions, headers, config), user_agent }
    }
}

/// The connection's peer address.
fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    {
        use axum::extract::connect_info::{ConnectInfo, MockConnectInfo};
        // As axum's own `ConnectInfo` extractor reads it, its test double included.
        if let Some(ConnectInfo(peer)) = extensions.get::<ConnectInfo<std::net::SocketAddr>>() {
            return Some(peer.ip());
        }
        if let Some(MockConnectInfo(peer)) = extensions.get::<MockConnectInfo<std::net::SocketAddr>>() {
            return Some(peer.ip());
        }
    }
    extensions.get::<std::net::SocketAddr>().map(std::net::SocketAddr::ip)
}

/// The client: the peer, or (behind a trusted proxy only) the right-most untrusted
/// `X-Forwarded-For` entry.
fn client_ip(extensions: &Extensions, headers: &HeaderMap, config: &SameContext) -> Option<IpAddr> {
    let peer = peer_ip(extensions)?.to_canonical();
    if !config.is_trusted(peer) {
        return Some(peer);
    }
    // Several header lines are one list, in order (RFC 9110 §5.3).
    let mut leftmost = None;
    for line in headers.get_all("x-forwarded-for").iter().rev() {
        for entry in line.to_str().ok()?.rsplit(',') {
            let ip = parse_hop(entry.trim())?.to_canonical();
            if !config.is_trusted(ip) {
                return Some(ip);
            }
            leftmost = Some(ip);
        }
    }
    // Every hop is a trusted proxy: the request began inside the proxy network.
    leftmost
}

/// One `X-Forwarded-For` entry: an address, possibly with a port.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|socket| socket.ip()))
}

/// The verdict of comparing a session's context with a request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Same,
    /// What differs (or was not recorded), by attribute name: `ip_address`,
    /// `user_agent`. A step-up (a new session started here) cures it.
    Differs {
        differs: Vec<&'static str>,
        unrecorded: bool,
    },
    /// The request's client address is unknown: a server configuration problem
    /// no user action cures.
    ClientUnknown,
}

/// Compares where `session` began with `request`.
pub(crate) fn compare(session: &Session, request: &RequestContext<'_>, config: &SameContext) -> Verdict {
    let recorded = session.attributes();
    let mut differs = Vec::new();
    let mut unrecorded = false;
    let mut let_through = false;
    match (recorded.ip_address, request.ip_address) {
        (None, _) if config.allow_unrecorded => let_through = true,
        (_, None) => return Verdict::ClientUnknown,
        (None, Some(_)) => {
            unrecorded = true;
            differs.push("ip_address");
        }
        (Some(began), Some(now)) if !config.same_network(began, now) => differs.push("ip_address"),
        (Some(_), Some(_)) => {}
    }
    if config.user_agent {
        match (recorded.user_agent.as_deref(), request.user_agent) {
            (None, _) if config.allow_unrecorded => let_through = true,
            (None, _) => {
                unrecorded = true;
                differs.push("user_agent");
            }
            (Some(began), now) if Some(began) != now => differs.push("user_agent"),
            (Some(_), _) => {}
        }
    }
    if differs.is_empty() {
        if let_through {
            tracing::debug!("same_context: the session recorded no context; let through (allow_unrecorded)");
        }
        Verdict::Same
    } else {
        Verdict::Differs { differs, unrecorded }
    }
}

/// A session used from another context than the one it began in: what
/// [`SameContext::on_mismatch`] is told. User data only, never a token.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextMismatch {
    /// The user (`sub`).
    pub subject: String,
    /// The session id, when the session has one.
    pub session_id: Option<String>,
    /// What differed (or was not recorded): `"ip_address"` (another network),
    /// `"user_agent"`.
    pub differs: Vec<&'static str>,
    /// The session recorded no address (or no user agent): nothing to compare.
    pub unrecorded: bool,
    /// Where the session began.
    pub recorded: SessionAttributes,
    /// The request's client address.
    pub observed_ip_address: Option<IpAddr>,
    /// The request's `User-Agent`.
    pub observed_user_agent: Option<String>,
}

impl ContextMismatch {
    /// The mismatch of `session` seen from `request`, if the verdict is one.
    pub(crate) fn of(session: &Session, request: &RequestContext<'_>, config: &SameContext) -> Option<Self> {
        let Verdict::Differs { differs, unrecorded } = compare(session, request, config) else {
            return None;
        };
        Some(Self {
            subject: session.subject().to_owned(),
            session_id: session.session_id().map(str::to_owned),
            differs,
            unrecorded,
            recorded: session.attributes().clone(),
            observed_ip_address: request.ip_address,
            observed_user_agent: request.user_agent.map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn prefixes() {
        let config = SameContext::default();
        assert!(config.same_network(ip("198.51.100.4"), ip("198.51.100.250")));
        assert!(!config.same_network(ip("198.51.100.4"), ip("198.51.101.4")));
        assert!(config.same_network(ip("2001:db8:1:2::1"), ip("2001:db8:1:2:ffff::9")));
        assert!(!config.same_network(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1")));
        assert!(config.same_network(ip("::ffff:198.51.100.4"), ip("198.51.100.9")), "mapped IPv4 is IPv4");
        assert!(!config.same_network(ip("198.51.100.4"), ip("2001:db8::1")));
        let exact = SameContext::default().with_ipv4_prefix(32).with_ipv6_prefix(128);
        assert!(!exact.same_network(ip("198.51.100.4"), ip("198.51.100.5")));
        let any = SameContext::default().with_ipv4_prefix(0).with_ipv6_prefix(0);
        assert!(any.same_network(ip("1.2.3.4"), ip("200.1.1.1")));
        assert!(any.same_network(ip("2001:db8::1"), ip("fe80::1")));
    }

    #[test]
    fn networks_parse_and_validate() {
        assert_eq!(Network::parse("10.0.0.0/8").map(|n| n.contains(ip("10.200.1.1"))), Some(true));
        assert_eq!(Network::parse("10.0.0.1").map(|n| n.contains(ip("10.0.0.2"))), Some(false));
        assert_eq!(Network::parse("fd00::/8").map(|n| n.contains(ip("fd12::1"))), Some(true));
        assert_eq!(Network::parse("10.0.0.0/33"), None);
        assert_eq!(Network::parse("proxy.internal"), None);
        assert!(SameContext::default().with_trusted_proxies(["10.0.0.0/8", "nope"]).validate().is_err());
        assert!(SameContext::default().with_ipv4_prefix(33).validate().is_err());
        assert!(SameContext::default().with_ipv6_prefix(129).validate().is_err());
        assert!(SameContext::default().with_trusted_proxies(["::1", "127.0.0.1/32"]).validate().is_ok());
    }
}
