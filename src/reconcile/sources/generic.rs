//! [`JsonSource`]: any paginated JSON API, described by configuration instead of code.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use url::Url;

use super::client::{next_link, to_unix_seconds, unix_seconds, ApiClient};
use crate::error::ConfigError;
use crate::reconcile::{Change, ChangeSource, FetchedEvent, Page, PollError, PollRequest};
use crate::rfc3339::{format as format_rfc3339, parse as parse_rfc3339};

/// How far back a [`JsonSource`] looks unless told: 30 days.
const DEFAULT_HORIZON_DAYS: u32 = 30;
/// The placeholders a URL template may hold.
const PLACEHOLDERS: [&str; 6] = [
    "since",
    "until",
    "since_unix",
    "until_unix",
    "cursor",
    "limit",
];

/// What a [`JsonSource`] is built from: a plain struct that deserializes from a TOML or
/// JSON file (unknown fields refused), or is filled in with [`JsonSource::builder`].
///
/// ```toml
/// name = "acme"
/// url = "https://api.acme.example/v2/events?from={since}&to={until}&limit={limit}&after={cursor}"
/// items = "/data"
/// id = "/id"
/// type = "/type"
/// time = "/created_at"
/// body = "/payload"
/// horizon_days = 30
///
/// [auth]
/// header = "Authorization"
/// value = "Bearer sk_live_..."
///
/// [cursor]
/// from = "field"
/// pointer = "/next_cursor"
/// ```
///
/// # The URL template
///
/// An absolute `http`/`https` URL with placeholders, each replaced percent-encoded:
///
/// | placeholder | replaced with |
/// |---|---|
/// | `{since}`, `{until}` | the window's start and end, RFC 3339 in UTC (`2026-01-01T00:00:00Z`) |
/// | `{since_unix}`, `{until_unix}` | the same as Unix seconds |
/// | `{cursor}` | the cursor of the previous page ([`CursorFrom::Field`]); empty on the first page, and a query parameter that is just `{cursor}` is then left out |
/// | `{limit}` | the page size asked for (at most `max_limit`, when set) |
///
/// With [`CursorFrom::NextUrl`] and [`CursorFrom::Link`] the template gives the first page
/// only, and later pages are the URLs the API names (only on the template's own origin: the
/// credentials are never sent elsewhere).
///
/// # Items
///
/// `items` is a [JSON pointer](https://www.rfc-editor.org/rfc/rfc6901) to the array of
/// events in each page (`""` when the page is the array). `id`, `type`, `time` and `body`
/// point into each item: `id` (a string or a number) is the id the push path stores the
/// event under; `type` is its event type; `time` (RFC 3339, or Unix seconds as a number or
/// a string of digits) when it happened, and items outside the window are skipped; `body`
/// the part stored as the event's body, byte for byte as the API returned it (default: the
/// whole item).
///
/// An item without an id (the pointer finds nothing, or neither a string nor a number)
/// stops the pass with [`PollError::Rejected`] naming the item's index in its page: it most
/// often means the `id` pointer is wrong, which skipping would hide while storing nothing.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JsonSourceConfig {
    /// The source name, the push route's.
    pub name: String,
    /// The URL template (see above).
    pub url: String,
    /// The credential header, if the API takes one.
    #[serde(default)]
    pub auth: Option<AuthHeader>,
    /// More headers sent with every request (an `Accept`, an API version). Their values are
    /// treated as sensitive too.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Where the next page's cursor comes from (default: one page per window).
    #[serde(default)]
    pub cursor: CursorFrom,
    /// Whether the cursor of a window's last page is carried to the next window, for APIs
    /// that only page forward from a known item (default `false`: each window starts from
    /// the template). When the last page names no next cursor, the cursor that led to it is
    /// carried, so the next window reads that page again.
    #[serde(default)]
    pub carry_cursor: bool,
    /// The largest page the API serves; `{limit}` is capped to it.
    #[serde(default)]
    pub max_limit: Option<usize>,
    /// Pointer to the items array in a page (default `/data`).
    #[serde(default = "default_items")]
    pub items: String,
    /// Pointer to an item's id (default `/id`).
    #[serde(default = "default_id")]
    pub id: String,
    /// Pointer to an item's event type.
    #[serde(default, rename = "type")]
    pub event_type: Option<String>,
    /// Pointer to when an item happened.
    #[serde(default)]
    pub time: Option<String>,
    /// Pointer to the part of an item stored as the body (default: the whole item).
    #[serde(default)]
    pub body: Option<String>,
    /// How many days back the API keeps events (default 30).
    #[serde(default = "default_horizon_days")]
    pub horizon_days: u32,
}

fn default_items() -> String {
    "/data".to_owned()
}

fn default_id() -> String {
    "/id".to_owned()
}

fn default_horizon_days() -> u32 {
    DEFAULT_HORIZON_DAYS
}

impl JsonSourceConfig {
    /// A configuration for source `name` at the URL template `url`, everything else at its
    /// default.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            auth: None,
            headers: BTreeMap::new(),
            cursor: CursorFrom::None,
            carry_cursor: false,
            max_limit: None,
            items: default_items(),
            id: default_id(),
            event_type: None,
            time: None,
            body: None,
            horizon_days: DEFAULT_HORIZON_DAYS,
        }
    }
}

impl fmt::Debug for JsonSourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonSourceConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("auth", &self.auth)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("cursor", &self.cursor)
            .field("carry_cursor", &self.carry_cursor)
            .field("max_limit", &self.max_limit)
            .field("items", &self.items)
            .field("id", &self.id)
            .field("event_type", &self.event_type)
            .field("time", &self.time)
            .field("body", &self.body)
            .field("horizon_days", &self.horizon_days)
            .finish()
    }
}

/// A credential sent as a header on every request, marked sensitive: its value never
/// appears in `Debug` output, logs or errors.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthHeader {
    /// The header name (`Authorization`, `X-Api-Key`).
    pub header: String,
    /// Its value (`Bearer ...`).
    pub value: String,
}

impl AuthHeader {
    /// Header `header` with `value`.
    pub fn new(header: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            header: header.into(),
            value: value.into(),
        }
    }
}

impl fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthHeader")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// Where a [`JsonSource`] finds the next page.
///
/// In a configuration file, `from` names the variant (`none`, `field`, `next_url`, `link`)
/// and the other keys its fields.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CursorFrom {
    /// One page per window.
    #[default]
    None,
    /// A token in the page's body, put in the template's `{cursor}`. A page whose token is
    /// absent, `null` or empty is the last; so is one that repeats the token it was asked
    /// with, an empty page unless `done` or `has_more` is set, and a page that `done` or
    /// `has_more` says is the last.
    Field {
        /// Pointer to the token (a string or a number).
        pointer: String,
        /// Pointer to a boolean that is `true` on the last page.
        #[serde(default)]
        done: Option<String>,
        /// Pointer to a boolean that is `false` on the last page.
        #[serde(default)]
        has_more: Option<String>,
    },
    /// The next page's URL, in the page's body (as Paddle's `/meta/pagination/next`). A page
    /// with none is the last, and so is one that `has_more` says is.
    NextUrl {
        /// Pointer to the URL.
        pointer: String,
        /// Pointer to a boolean that is `false` on the last page.
        #[serde(default)]
        has_more: Option<String>,
    },
    /// The `Link` header's `rel="next"` URL (RFC 8288), as GitHub pages; a page without one
    /// is the last.
    Link,
}

/// A paginated JSON API read as configured (see [`JsonSourceConfig`] for what each setting
/// means), so a provider without a ready source is covered without code.
///
/// ```
/// # fn main() -> Result<(), hookdock::ConfigError> {
/// use hookdock::reconcile::sources::{CursorFrom, JsonSource};
///
/// let source = JsonSource::builder("acme", "https://api.acme.example/events?since={since_unix}&limit={limit}")
///     .auth("X-Api-Key", "key_...")
///     .cursor(CursorFrom::Link)
///     .id("/event/id")
///     .time("/event/created")
///     .build()?;
/// # let _ = source; Ok(()) }
/// ```
pub struct JsonSource {
    client: ApiClient,
    /// The template's origin (`scheme://host[:port]`): the only one requests go to.
    origin: String,
    template: String,
    cursor: Cursor,
    carry: bool,
    max_limit: Option<usize>,
    items: Pointer,
    id: Pointer,
    event_type: Option<Pointer>,
    time: Option<Pointer>,
    body: Option<Pointer>,
    name: String,
    horizon: Duration,
}

impl fmt::Debug for JsonSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonSource")
            .field("name", &self.name)
            .field("client", &self.client)
            .field("template", &self.template)
            .field("horizon", &self.horizon)
            .finish_non_exhaustive()
    }
}

/// Builds a [`JsonSource`]; see [`JsonSource::builder`].
#[derive(Debug, Clone)]
pub struct JsonSourceBuilder {
    config: JsonSourceConfig,
    horizon: Option<Duration>,
}

impl JsonSource {
    /// A source `name` reading the URL template `url` (see [`JsonSourceConfig`]).
    pub fn builder(name: impl Into<String>, url: impl Into<String>) -> JsonSourceBuilder {
        JsonSourceBuilder {
            config: JsonSourceConfig::new(name, url),
            horizon: None,
        }
    }

    /// The source a configuration describes, or what is wrong with it.
    pub fn from_config(config: JsonSourceConfig) -> Result<Self, ConfigError> {
        JsonSourceBuilder {
            config,
            horizon: None,
        }
        .build()
    }
}

impl From<JsonSourceConfig> for JsonSourceBuilder {
    fn from(config: JsonSourceConfig) -> Self {
        Self {
            config,
            horizon: None,
        }
    }
}

impl JsonSourceBuilder {
    /// Sends the credential `value` as header `header` (sensitive: never shown).
    pub fn auth(mut self, header: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.auth = Some(AuthHeader::new(header, value));
        self
    }

    /// Sends header `name` with `value` on every request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.headers.insert(name.into(), value.into());
        self
    }

    /// Where the next page's cursor comes from (default [`CursorFrom::None`]).
    pub fn cursor(mut self, cursor: CursorFrom) -> Self {
        self.config.cursor = cursor;
        self
    }

    /// Carries the cursor of a window's last page to the next window.
    pub fn carry_cursor(mut self, carry: bool) -> Self {
        self.config.carry_cursor = carry;
        self
    }

    /// Caps `{limit}` at the API's largest page.
    pub fn max_limit(mut self, max: usize) -> Self {
        self.config.max_limit = Some(max);
        self
    }

    /// Pointer to the items array (default `/data`).
    pub fn items(mut self, pointer: impl Into<String>) -> Self {
        self.config.items = pointer.into();
        self
    }

    /// Pointer to an item's id (default `/id`).
    pub fn id(mut self, pointer: impl Into<String>) -> Self {
        self.config.id = pointer.into();
        self
    }

    /// Pointer to an item's event type.
    pub fn event_type(mut self, pointer: impl Into<String>) -> Self {
        self.config.event_type = Some(pointer.into());
        self
    }

    /// Pointer to when an item happened (RFC 3339 or Unix seconds).
    pub fn time(mut self, pointer: impl Into<String>) -> Self {
        self.config.time = Some(pointer.into());
        self
    }

    /// Pointer to the part of an item stored as the body (default: the whole item).
    pub fn body(mut self, pointer: impl Into<String>) -> Self {
        self.config.body = Some(pointer.into());
        self
    }

    /// How far back the API keeps events (default: the configuration's `horizon_days`).
    pub fn horizon(mut self, horizon: Duration) -> Self {
        self.horizon = Some(horizon);
        self
    }

    /// The source, or what is wrong with the settings.
    pub fn build(self) -> Result<JsonSource, ConfigError> {
        let config = self.config;
        if config.name.is_empty() {
            return Err(ConfigError::Missing("source name"));
        }
        let horizon = self.horizon.unwrap_or(Duration::from_secs(
            u64::from(config.horizon_days) * 24 * 3600,
        ));
        if horizon.is_zero() {
            return Err(ConfigError::InvalidValue {
                what: "horizon",
                reason: "must be positive",
            });
        }
        check_template(&config.url)?;
        let probe = Url::parse(&fill(&config.url, &probe_values())).map_err(|_| {
            ConfigError::InvalidUrl {
                what: "URL template",
                reason: "not an absolute URL once its placeholders are filled",
            }
        })?;
        if !matches!(probe.scheme(), "http" | "https") || probe.host_str().is_none() {
            return Err(ConfigError::InvalidUrl {
                what: "URL template",
                reason: "must be an http or https URL",
            });
        }
        let cursor = match &config.cursor {
            CursorFrom::None => Cursor::None,
            CursorFrom::Field {
                pointer,
                done,
                has_more,
            } => {
                if !config.url.contains("{cursor}") {
                    return Err(ConfigError::InvalidValue {
                        what: "URL template",
                        reason: "a field cursor needs a {cursor} placeholder",
                    });
                }
                if done.is_some() && has_more.is_some() {
                    return Err(ConfigError::InvalidValue {
                        what: "cursor",
                        reason: "set `done` or `has_more`, not both",
                    });
                }
                Cursor::Field {
                    pointer: Pointer::parse(pointer, "cursor pointer")?,
                    last: match (done, has_more) {
                        (Some(p), _) => Some((Pointer::parse(p, "cursor `done` pointer")?, true)),
                        (_, Some(p)) => {
                            Some((Pointer::parse(p, "cursor `has_more` pointer")?, false))
                        }
                        _ => None,
                    },
                }
            }
            CursorFrom::NextUrl { pointer, has_more } => Cursor::NextUrl {
                pointer: Pointer::parse(pointer, "cursor pointer")?,
                has_more: has_more
                    .as_deref()
                    .map(|p| Pointer::parse(p, "cursor `has_more` pointer"))
                    .transpose()?,
            },
            CursorFrom::Link => Cursor::Link,
        };
        if config.max_limit == Some(0) {
            return Err(ConfigError::InvalidValue {
                what: "max_limit",
                reason: "must be positive",
            });
        }
        let base = probe.origin().ascii_serialization();
        let mut client = ApiClient::new(&base)?;
        if let Some(auth) = &config.auth {
            let name = header_name(&auth.header)?;
            if auth.value.is_empty() {
                return Err(ConfigError::Missing("auth header value"));
            }
            client = client.with_auth(name, &auth.value)?;
        }
        for (name, value) in &config.headers {
            let mut value =
                http::HeaderValue::from_str(value).map_err(|_| ConfigError::InvalidValue {
                    what: "header value",
                    reason: "not a valid header value",
                })?;
            value.set_sensitive(true);
            client = client.with_header(header_name(name)?, value);
        }
        Ok(JsonSource {
            client,
            origin: base.clone(),
            template: config.url,
            cursor,
            carry: config.carry_cursor,
            max_limit: config.max_limit,
            items: Pointer::parse(&config.items, "items pointer")?,
            id: Pointer::parse(&config.id, "id pointer")?,
            event_type: config
                .event_type
                .as_deref()
                .map(|p| Pointer::parse(p, "type pointer"))
                .transpose()?,
            time: config
                .time
                .as_deref()
                .map(|p| Pointer::parse(p, "time pointer"))
                .transpose()?,
            body: config
                .body
                .as_deref()
                .map(|p| Pointer::parse(p, "body pointer"))
                .transpose()?,
            name: config.name,
            horizon,
        })
    }
}

fn header_name(name: &str) -> Result<http::HeaderName, ConfigError> {
    http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| ConfigError::InvalidHeaderName {
        name: name.to_owned(),
    })
}

/// The parsed cursor setting.
enum Cursor {
    None,
    Field {
        pointer: Pointer,
        last: Option<(Pointer, bool)>,
    },
    NextUrl {
        pointer: Pointer,
        has_more: Option<Pointer>,
    },
    Link,
}

/// A JSON pointer's reference tokens, unescaped.
struct Pointer(Vec<String>);

impl Pointer {
    fn parse(text: &str, what: &'static str) -> Result<Self, ConfigError> {
        if text.is_empty() {
            return Ok(Self(Vec::new()));
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(ConfigError::InvalidValue {
                what,
                reason: "a JSON pointer is empty or starts with `/`",
            });
        };
        let mut tokens = Vec::new();
        for token in rest.split('/') {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => {
                            return Err(ConfigError::InvalidValue {
                                what,
                                reason: "`~` in a JSON pointer must be followed by 0 or 1",
                            })
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            tokens.push(out);
        }
        Ok(Self(tokens))
    }

    /// What the pointer names in `root`, its bytes untouched; `None` if nothing.
    fn find<'a>(&self, root: &'a RawValue) -> Option<&'a RawValue> {
        let mut at = root;
        for token in &self.0 {
            let text: &'a str = at.get();
            at = match text.trim_start().as_bytes().first()? {
                b'{' => {
                    let object: HashMap<String, &'a RawValue> = serde_json::from_str(text).ok()?;
                    *object.get(token.as_str())?
                }
                b'[' => {
                    let index: usize = token.parse().ok()?;
                    let array: Vec<&'a RawValue> = serde_json::from_str(text).ok()?;
                    *array.get(index)?
                }
                _ => return None,
            };
        }
        Some(at)
    }

    /// What the pointer names, as a JSON value.
    fn value(&self, root: &RawValue) -> Option<serde_json::Value> {
        serde_json::from_str(self.find(root)?.get()).ok()
    }
}

/// Text from a string or a number; `None` for anything else and for an empty string.
fn text_of(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A time from RFC 3339 text, or Unix seconds as a number or a string of digits.
fn time_of(value: &serde_json::Value) -> Option<SystemTime> {
    match value {
        serde_json::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok().map(unix_seconds)
        }
        serde_json::Value::String(s) => parse_rfc3339(s),
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(unix_seconds),
        _ => None,
    }
}

/// Checks that every `{...}` in `template` is a known placeholder.
fn check_template(template: &str) -> Result<(), ConfigError> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(ConfigError::InvalidValue {
                what: "URL template",
                reason: "a `{` is not closed",
            });
        };
        if !PLACEHOLDERS.contains(&&after[..close]) {
            return Err(ConfigError::InvalidValue {
                what: "URL template",
                reason: "unknown placeholder (expected {since}, {until}, {since_unix}, {until_unix}, {cursor} or {limit})",
            });
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

fn probe_values() -> HashMap<&'static str, String> {
    PLACEHOLDERS.iter().map(|p| (*p, "0".to_owned())).collect()
}

/// `template` with each placeholder replaced by its value, percent-encoded.
fn fill(template: &str, values: &HashMap<&'static str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                if let Some(value) = values.get(&after[..close]) {
                    encode_into(&mut out, value);
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Percent-encodes all but the unreserved characters of RFC 3986.
fn encode_into(out: &mut String, value: &str) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// `template` without the query parameters whose value is just `{cursor}`.
fn without_cursor_param(template: &str) -> String {
    let Some((path, query)) = template.split_once('?') else {
        return template.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.ends_with("={cursor}"))
        .collect();
    let mut out = path.to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

impl JsonSource {
    /// The URL of the page `request` asks for.
    fn page_url(&self, request: &PollRequest<'_>) -> Result<Url, PollError> {
        let url_cursor = matches!(self.cursor, Cursor::NextUrl { .. } | Cursor::Link);
        if let (true, Some(cursor)) = (url_cursor, request.cursor) {
            return self.same_origin(cursor, None);
        }
        let limit = match self.max_limit {
            Some(max) => request.limit.clamp(1, max),
            None => request.limit.max(1),
        };
        let mut values = HashMap::new();
        values.insert("since", format_rfc3339(request.since));
        values.insert("until", format_rfc3339(request.until));
        values.insert("since_unix", to_unix_seconds(request.since).to_string());
        values.insert("until_unix", to_unix_seconds(request.until).to_string());
        values.insert("limit", limit.to_string());
        let cursor = if url_cursor { None } else { request.cursor };
        let template = match cursor {
            Some(cursor) => {
                values.insert("cursor", cursor.to_owned());
                self.template.clone()
            }
            None => {
                values.insert("cursor", String::new());
                without_cursor_param(&self.template)
            }
        };
        Url::parse(&fill(&template, &values)).map_err(|e| PollError::Rejected {
            status: None,
            message: format!("the URL template gave a bad URL: {e}"),
        })
    }

    /// `link` (resolved against `base`, if relative) when it is on the template's origin.
    fn same_origin(&self, link: &str, base: Option<&Url>) -> Result<Url, PollError> {
        let url = match base {
            Some(base) => base.join(link),
            None => Url::parse(link),
        }
        .map_err(|e| PollError::Rejected {
            status: None,
            message: format!("the next page's URL does not parse: {e}"),
        })?;
        if url.origin().ascii_serialization() != self.origin {
            return Err(PollError::Rejected {
                status: None,
                message:
                    "the next page's URL is on another origin; not sending the credentials there"
                        .into(),
            });
        }
        Ok(url)
    }

    /// Whether the pointer `flag` reads `when` in the page (a missing flag says nothing).
    fn flag_is(page: &RawValue, flag: &Pointer, when: bool) -> bool {
        flag.value(page).and_then(|v| v.as_bool()) == Some(when)
    }

    /// The item at `index` of a page as an event, or `None` if it is outside the window.
    fn item(
        &self,
        index: usize,
        item: &RawValue,
        request: &PollRequest<'_>,
    ) -> Result<Option<FetchedEvent>, PollError> {
        let id = self
            .id
            .value(item)
            .as_ref()
            .and_then(text_of)
            .ok_or_else(|| PollError::Rejected {
                status: None,
                message: format!(
                    "item {index} of the page has no id (a string or a number) at the `id` pointer"
                ),
            })?;
        let at = self
            .time
            .as_ref()
            .and_then(|p| p.value(item))
            .as_ref()
            .and_then(time_of);
        if at.is_some_and(|at| at < request.since || at > request.until) {
            return Ok(None);
        }
        let body = match &self.body {
            Some(pointer) => pointer.find(item).ok_or_else(|| PollError::Rejected {
                status: None,
                message: format!("item {index} of the page has nothing at the `body` pointer"),
            })?,
            None => item,
        };
        let mut event = FetchedEvent::new(id, Bytes::copy_from_slice(body.get().as_bytes()));
        if let Some(event_type) = self
            .event_type
            .as_ref()
            .and_then(|p| p.value(item))
            .as_ref()
            .and_then(text_of)
        {
            event = event.with_type(event_type);
        }
        if let Some(at) = at {
            event = event.with_occurred_at(at);
        }
        Ok(Some(event))
    }

    /// The last page of a window: carrying `next` (or, with none, where it began) if set to.
    fn last(&self, changes: Vec<Change>, next: Option<String>, request: &PollRequest<'_>) -> Page {
        let carried = if self.carry {
            next.or_else(|| request.cursor.map(str::to_owned))
        } else {
            None
        };
        Page::last(changes, carried)
    }
}

#[async_trait]
impl ChangeSource for JsonSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn horizon(&self) -> Duration {
        self.horizon
    }

    async fn poll(&self, request: PollRequest<'_>) -> Result<Page, PollError> {
        let url = self.page_url(&request)?;
        let answer = self.client.get(url.clone()).await?;
        let page: &RawValue = serde_json::from_slice(&answer.body).map_err(|e| {
            PollError::transient(format!("the API answered a page that is not JSON: {e}"))
        })?;
        let items_raw = self.items.find(page).ok_or_else(|| PollError::Rejected {
            status: None,
            message: "the page has nothing at the `items` pointer".into(),
        })?;
        let items: Vec<&RawValue> =
            serde_json::from_str(items_raw.get()).map_err(|_| PollError::Rejected {
                status: None,
                message: "the `items` pointer names something that is not an array".into(),
            })?;
        let empty = items.is_empty();
        let mut changes = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            if let Some(event) = self.item(index, item, &request)? {
                changes.push(Change::Event(event));
            }
        }
        match &self.cursor {
            Cursor::None => Ok(self.last(changes, None, &request)),
            Cursor::Field { pointer, last } => {
                let next = pointer.value(page).as_ref().and_then(text_of);
                let ended = match last {
                    Some((flag, when)) => Self::flag_is(page, flag, *when),
                    None => empty,
                };
                match next {
                    Some(next) if !ended && Some(next.as_str()) != request.cursor => {
                        Ok(Page::more(changes, next))
                    }
                    next => Ok(self.last(changes, next, &request)),
                }
            }
            Cursor::NextUrl { pointer, has_more } => {
                let next = pointer.value(page).as_ref().and_then(text_of);
                let ended = has_more
                    .as_ref()
                    .is_some_and(|flag| Self::flag_is(page, flag, false));
                let next = next
                    .map(|n| self.same_origin(&n, Some(&url)).map(String::from))
                    .transpose()?;
                match next {
                    Some(next) if !ended && Some(next.as_str()) != request.cursor => {
                        Ok(Page::more(changes, next))
                    }
                    next => Ok(self.last(changes, next, &request)),
                }
            }
            Cursor::Link => {
                let next = next_link(&answer.headers)
                    .map(|n| self.same_origin(&n, Some(&url)).map(String::from))
                    .transpose()?;
                match next {
                    Some(next) if Some(next.as_str()) != request.cursor => {
                        Ok(Page::more(changes, next))
                    }
                    next => Ok(self.last(changes, next, &request)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn pointers_find_exact_bytes() {
        let page = raw(r#"{"data":[{"id":7,"a/b":{"x" : [1, 2]},"t~":"y"}],"meta":{"next":"n"}}"#);
        let item = Pointer::parse("/data/0", "p").unwrap().find(&page).unwrap();
        assert_eq!(
            Pointer::parse("/a~1b", "p")
                .unwrap()
                .find(item)
                .unwrap()
                .get(),
            r#"{"x" : [1, 2]}"#
        );
        assert_eq!(
            Pointer::parse("/t~0", "p").unwrap().value(item),
            Some(serde_json::json!("y"))
        );
        assert_eq!(
            text_of(&Pointer::parse("/id", "p").unwrap().value(item).unwrap()).as_deref(),
            Some("7")
        );
        assert!(Pointer::parse("/data/1", "p")
            .unwrap()
            .find(&page)
            .is_none());
        assert!(Pointer::parse("/meta/next/x", "p")
            .unwrap()
            .find(&page)
            .is_none());
        assert_eq!(
            Pointer::parse("", "p").unwrap().find(&page).unwrap().get(),
            page.get()
        );
        assert!(Pointer::parse("data", "p").is_err());
        assert!(Pointer::parse("/a~2", "p").is_err());
    }

    #[test]
    fn templates_are_checked_and_filled() {
        assert!(check_template("https://x/e?a={since}&b={cursor}").is_ok());
        assert!(check_template("https://x/e?a={from}").is_err());
        assert!(check_template("https://x/e?a={since").is_err());
        let mut values = HashMap::new();
        values.insert("since", "2026-01-01T00:00:00Z".to_owned());
        values.insert("cursor", "a b&c".to_owned());
        assert_eq!(
            fill("https://x/e?s={since}&c={cursor}", &values),
            "https://x/e?s=2026-01-01T00%3A00%3A00Z&c=a%20b%26c"
        );
        assert_eq!(
            without_cursor_param("https://x/e?after={cursor}&n=1"),
            "https://x/e?n=1"
        );
        assert_eq!(
            without_cursor_param("https://x/e?after={cursor}"),
            "https://x/e"
        );
    }

    #[test]
    fn times_read_rfc3339_and_unix_seconds() {
        let at = unix_seconds(1_767_225_600);
        assert_eq!(time_of(&serde_json::json!(1_767_225_600)), Some(at));
        assert_eq!(time_of(&serde_json::json!("1767225600")), Some(at));
        assert_eq!(
            time_of(&serde_json::json!("2026-01-01T00:00:00Z")),
            Some(at)
        );
        assert_eq!(time_of(&serde_json::json!(true)), None);
    }

    #[test]
    fn bad_configuration_says_why() {
        let err = |b: JsonSourceBuilder| b.build().unwrap_err().to_string();
        let b = || JsonSource::builder("x", "https://api.example/e?limit={limit}");
        assert!(b().build().is_ok());
        assert!(err(JsonSource::builder("x", "not a url")).contains("URL template"));
        assert!(err(JsonSource::builder("x", "ftp://h/e")).contains("http"));
        assert!(
            err(JsonSource::builder("x", "https://h/e?x={nope}")).contains("unknown placeholder")
        );
        assert!(err(b().cursor(CursorFrom::Field {
            pointer: "/c".into(),
            done: None,
            has_more: None
        }))
        .contains("{cursor}"));
        assert!(err(b().items("data")).contains("items pointer"));
        assert!(err(b().auth("bad header", "v")).contains("header name"));
        assert!(err(b().horizon(Duration::ZERO)).contains("horizon"));
        assert!(err(JsonSource::builder("", "https://h/e")).contains("source name"));
    }

    #[test]
    fn configuration_deserializes_and_hides_the_credential() {
        let config: JsonSourceConfig = serde_json::from_str(
            r#"{"name":"acme","url":"https://h/e?after={cursor}","auth":{"header":"Authorization","value":"Bearer s3cr3t"},
                "cursor":{"from":"field","pointer":"/next","done":"/done"},"time":"/at","horizon_days":7}"#,
        )
        .unwrap();
        assert!(
            matches!(config.cursor, CursorFrom::Field { ref done, .. } if done.as_deref() == Some("/done"))
        );
        assert_eq!(config.items, "/data");
        assert!(!format!("{config:?}").contains("s3cr3t"));
        let source = JsonSource::from_config(config).unwrap();
        assert_eq!(source.horizon(), Duration::from_secs(7 * 24 * 3600));
        assert!(!format!("{source:?}").contains("s3cr3t"));
        assert!(serde_json::from_str::<JsonSourceConfig>(
            r#"{"name":"a","url":"https://h","surprise":1}"#
        )
        .is_err());
    }
}
