//! Helpers the benchmarks share: settings from the environment, random-looking delivery ids,
//! medians, and what a child process reports of itself. Each bench uses some of them.

#![allow(dead_code)]

/// The error type of the benches' fallible steps.
pub type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The number in the environment variable `name`, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `cargo test --benches` runs each bench binary with `--list`: nothing to measure then.
pub fn listing_only() -> bool {
    std::env::args().any(|a| a == "--list")
}

/// One SplitMix64 step: a well-spread 64-bit value for `i`.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A random-looking (v4-shaped) UUID for event `i`: provider delivery ids such as GitHub's
/// are random, the hard case for a unique index. Distinct for distinct `i`.
pub fn uuid(i: usize) -> String {
    let (a, b) = (mix(i as u64), mix(!(i as u64)));
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// The median of `values` (the upper one of an even count); `NaN` for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Peak resident set size of this process, in KiB (0 where `/proc` is unavailable).
pub fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The number in a `key=value` field of a child's result line.
pub fn field(line: &str, key: &str) -> BoxResult<f64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .ok_or_else(|| format!("no {key} in {line:?}"))?
        .parse::<f64>()
        .map_err(Into::into)
}
