//! How a suite of checks is written, so that the conformance macro is generated from it: a
//! check added to a suite is run by every backend's conformance tests, it cannot be left out.

/// Defines a suite's checks (each `pub async fn name<H: StoreHarness>(h: &H)`), and a
/// hidden exported macro, named by the second argument, that expands every one of them into a
/// `#[tokio::test]` for a harness. `store_conformance!` calls those macros.
///
/// The first argument is a lone `$`, so the generated macro can have metavariables of its own.
macro_rules! suite {
    (
        $d:tt $expand:ident, $suite:ident;
        $(
            $(#[$attr:meta])*
            pub async fn $check:ident<H: StoreHarness>($h:ident: &H) $body:block
        )*
    ) => {
        $(
            $(#[$attr])*
            pub async fn $check<H: StoreHarness>($h: &H) $body
        )*

        /// Expands every check of this suite into a test; used by `store_conformance!`.
        #[doc(hidden)]
        #[macro_export]
        macro_rules! $expand {
            ($d harness:expr) => {
                $(
                    #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $check() {
                        $crate::testing::$suite::$check(&$d harness).await;
                    }
                )*
            };
        }
    };
}

pub(crate) use suite;
