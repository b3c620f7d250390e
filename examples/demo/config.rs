//! The receiver's configuration from the environment, and its fail-closed rules. Included by
//! `examples/receiver.rs`; the variables are listed there.
//!
//! - A secret or token variable that is set but empty (or only whitespace) is an error, never
//!   "unset".
//! - A secret variable holds a comma-separated list (a rotation: the new secret and the old
//!   one), tried like the library's presets try several secrets. So a secret cannot contain a
//!   comma here.
//! - The development secrets are used only when the variable is unset and the receiver is
//!   bound to a loopback address.

use std::error::Error;
use std::time::Duration;

use hookdock::serve::ServeConfig;

/// The routes, by the name used in `HOOKDOCK_ROUTES` and `HOOKDOCK_ID_FROM_BODY`.
pub const ROUTES: [&str; 3] = ["github", "stripe", "standard"];

const DEV_GITHUB_SECRET: &str = "hookdock-dev-github-secret";
const DEV_STRIPE_SECRET: &str = "whsec_hookdock_dev_stripe_secret";
const DEV_STANDARD_SECRET: &str = "whsec_aG9va2RvY2stZGV2LXN0YW5kYXJkLXNlY3JldC0zMmI=";

/// Everything the receiver reads from the environment, but the worker's and admin settings
/// (`examples/demo/worker.rs`).
pub struct Config {
    pub db: String,
    /// PostgreSQL instead of SQLite, when set.
    pub database_url: Option<String>,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub database_schema: String,
    pub max_depth: Option<u64>,
    /// The webhook routes served, with their secrets.
    pub routes: Vec<Route>,
    pub edge: Edge,
}

/// One webhook route: `POST /webhooks/<name>`.
pub struct Route {
    pub name: &'static str,
    pub secrets: Secrets,
    /// The event id is the body's SHA-256 (`HOOKDOCK_ID_FROM_BODY`), not the provider's id.
    pub id_from_body: bool,
}

impl Route {
    /// The variable holding this route's secrets.
    pub fn secret_var(&self) -> String {
        secret_var(self.name)
    }
}

fn secret_var(route: &str) -> String {
    format!("HOOKDOCK_{}_SECRET", route.to_ascii_uppercase())
}

/// The timeouts and limits at the HTTP edge.
pub struct Edge {
    /// `false` only with `HOOKDOCK_LIMITS=off` (for measuring what they cost).
    pub limits: bool,
    pub serve: ServeConfig,
    pub body_timeout: Duration,
}

/// One route's secrets, and whether they are the development default (which may be printed).
pub struct Secrets {
    pub values: Vec<String>,
    pub dev: bool,
}

impl Secrets {
    fn from_env(var: &str, dev_default: &str, loopback: bool) -> Result<Self, Box<dyn Error>> {
        match secret_list(var)? {
            Some(values) => Ok(Self { values, dev: false }),
            None if loopback => Ok(Self {
                values: vec![dev_default.to_owned()],
                dev: true,
            }),
            None => Err(format!(
                "{var} is not set, and this receiver is not on a loopback address: the \
                 development secret is public, so it is only used on 127.0.0.1 or [::1]. Set \
                 {var} (during a rotation, the new and the old secret separated by a comma), \
                 or leave the route out of HOOKDOCK_ROUTES"
            )
            .into()),
        }
    }

    /// For the start-up banner: never a secret from the environment.
    pub fn describe(&self, var: &str) -> String {
        match (self.dev, self.values.len()) {
            (true, _) => format!(
                "{var}: not set, using the development secret {:?}",
                self.values[0]
            ),
            (false, 1) => format!("{var}: set (from the environment)"),
            (false, n) => format!("{var}: {n} secrets (from the environment), tried in order"),
        }
    }
}

/// A variable's value, with empty meaning unset (for settings that are not secrets).
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Parses a setting, or gives its default; a bad value is an error naming the variable.
pub fn parse<T: std::str::FromStr>(
    name: &str,
    default: T,
    what: &str,
) -> Result<T, Box<dyn Error>> {
    match env(name) {
        Some(v) => v
            .parse()
            .map_err(|_| format!("{name} must be {what}, not {v:?}").into()),
        None => Ok(default),
    }
}

/// A duration such as `10s` or `500ms`, or the default; zero is an error.
pub fn duration(name: &str, default: Duration) -> Result<Duration, Box<dyn Error>> {
    let Some(v) = env(name) else {
        return Ok(default);
    };
    let bad = || format!("{name} must be a duration such as 10s or 500ms, not {v:?}");
    let (number, unit) = match v.strip_suffix("ms") {
        Some(n) => (n, 1),
        None => (v.strip_suffix('s').ok_or_else(bad)?, 1000),
    };
    let millis: u64 = number.trim().parse().map_err(|_| bad())?;
    if millis == 0 {
        return Err(format!("{name} must be positive, not {v:?}").into());
    }
    Ok(Duration::from_millis(millis * unit))
}

/// A comma-separated list of secrets or tokens, `None` when the variable is unset. Set but
/// empty, only whitespace, with an empty item, or not UTF-8: an error naming the variable.
pub fn secret_list(name: &str) -> Result<Option<Vec<String>>, Box<dyn Error>> {
    let value = match std::env::var(name) {
        Ok(value) => value,
        Err(std::env::VarError::NotPresent) => return Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(format!("{name} is not valid UTF-8").into())
        }
    };
    if value.trim().is_empty() {
        return Err(format!(
            "{name} is set but empty: set it to the secret, or unset it (an empty secret \
             would be accepted by nobody, or by everybody)"
        )
        .into());
    }
    let items: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).collect();
    if let Some(i) = items.iter().position(String::is_empty) {
        return Err(format!(
            "{name}: secret #{} of {} is empty (secrets are separated by commas)",
            i + 1,
            items.len()
        )
        .into());
    }
    Ok(Some(items))
}

/// A comma-separated list of route names.
fn route_list(name: &str, default: &[&'static str]) -> Result<Vec<&'static str>, Box<dyn Error>> {
    let Some(v) = env(name) else {
        return Ok(default.to_vec());
    };
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            ROUTES.into_iter().find(|r| *r == s).ok_or_else(|| {
                format!("{name}: unknown route {s:?} (the routes are github, stripe, standard)")
                    .into()
            })
        })
        .collect()
}

impl Config {
    /// Reads the configuration of a receiver bound to an address that is (or is not)
    /// `loopback`.
    pub fn from_env(loopback: bool) -> Result<Self, Box<dyn Error>> {
        let enabled = route_list("HOOKDOCK_ROUTES", &ROUTES)?;
        if enabled.is_empty() {
            return Err("HOOKDOCK_ROUTES names no route".into());
        }
        let id_from_body = route_list("HOOKDOCK_ID_FROM_BODY", &[])?;
        let mut routes = Vec::new();
        for name in ROUTES.into_iter().filter(|r| enabled.contains(r)) {
            let dev = match name {
                "github" => DEV_GITHUB_SECRET,
                "stripe" => DEV_STRIPE_SECRET,
                _ => DEV_STANDARD_SECRET,
            };
            routes.push(Route {
                name,
                secrets: Secrets::from_env(&secret_var(name), dev, loopback)?,
                id_from_body: id_from_body.contains(&name),
            });
        }
        let limits = match env("HOOKDOCK_LIMITS").as_deref() {
            None | Some("on") => true,
            Some("off") if loopback => false,
            Some("off") => {
                return Err(
                    "HOOKDOCK_LIMITS=off (no timeouts or connection limits, for \
                            measuring their cost) is only allowed on a loopback address"
                        .into(),
                )
            }
            Some(other) => {
                return Err(format!("HOOKDOCK_LIMITS must be on or off, not {other:?}").into())
            }
        };
        let defaults = ServeConfig::default();
        let serve = ServeConfig::builder()
            .header_read_timeout(duration(
                "HOOKDOCK_HEADER_TIMEOUT",
                defaults.header_read_timeout().unwrap_or_default(),
            )?)
            .max_connections(parse(
                "HOOKDOCK_MAX_CONNECTIONS",
                defaults.max_connections(),
                "a whole number",
            )?)
            .max_in_flight(parse(
                "HOOKDOCK_MAX_IN_FLIGHT",
                defaults.max_in_flight(),
                "a whole number",
            )?)
            .shutdown_deadline(duration(
                "HOOKDOCK_SHUTDOWN_DEADLINE",
                defaults.shutdown_deadline(),
            )?)
            .build()
            .map_err(|e| format!("edge limits: {e}"))?;
        Ok(Self {
            db: env("HOOKDOCK_DB").unwrap_or_else(|| "hookdock.db".into()),
            database_url: env("HOOKDOCK_DATABASE_URL"),
            database_schema: env("HOOKDOCK_DATABASE_SCHEMA").unwrap_or_else(|| "public".into()),
            max_depth: match env("HOOKDOCK_MAX_DEPTH") {
                Some(v) => Some(v.parse().map_err(|_| {
                    format!("HOOKDOCK_MAX_DEPTH must be a whole number of events, not {v:?}")
                })?),
                None => None,
            },
            routes,
            edge: Edge {
                limits,
                serve,
                body_timeout: duration(
                    "HOOKDOCK_BODY_TIMEOUT",
                    hookdock::verify::DEFAULT_BODY_TIMEOUT,
                )?,
            },
        })
    }

    /// The GitHub route, if served (the banner's test command uses it).
    pub fn github(&self) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == "github")
    }

    /// Lines for the start-up banner about the edge.
    pub fn describe_edge(&self) -> String {
        let e = &self.edge;
        if !e.limits {
            return "  edge: HOOKDOCK_LIMITS=off: no timeouts or connection limits (loopback only)"
                .into();
        }
        let s = &e.serve;
        format!(
            "  edge: header/idle timeout {:?}, body timeout {:?}, at most {} connections and {} \
             requests in flight, shutdown deadline {:?}",
            s.header_read_timeout().unwrap_or_default(),
            e.body_timeout,
            s.max_connections(),
            s.max_in_flight(),
            s.shutdown_deadline()
        )
    }
}
