//! Placeholder; filled below.
mod postgres_support;
