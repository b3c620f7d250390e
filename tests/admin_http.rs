//! End to end: the admin routes over real HTTP.
