//! Tests that must not be able to reach any other machine, even when the code under test
//! is wrong (an address-policy bug would dial 10.0.0.1 or 169.254.169.254): they run inside
//! a network namespace holding only loopback, where any other address is unreachable.
//!
//! Write such a test with [`isolated_test!`]:
//!
//! ```ignore
//! isolated_test! {
//!     /// Doc comment and attributes are kept.
//!     async fn registering_refused_addresses() {
//!         let gw = Gateway::start_with(MockConfig::default(), EXTRA).await;
//!         // …
//!     }
//! }
//! ```
//!
//! It expands to a plain `#[test]` that calls [`isolated`]: outside a namespace it re-runs
//! this test binary, filtered to that one test, under
//! `unshare --net -- sh -c 'ip link set lo up && exec "$@"'` with `TOKENROUTER_ISOLATED=1`,
//! and asserts that the child passed; inside, it first checks that the namespace really
//! holds only `lo`, then runs the body on a multi-threaded tokio runtime. Needs root (or
//! `CAP_SYS_ADMIN`) and `unshare`/`ip` (util-linux, iproute2): without them the test fails
//! and says so, rather than run unprotected.

use std::future::Future;
use std::process::Command;

/// Set in the child that runs inside the namespace.
pub const ISOLATED_ENV: &str = "TOKENROUTER_ISOLATED";

/// Declares `#[test] fn $name()` whose `async` body runs in a loopback-only network
/// namespace (see the module's documentation).
#[macro_export]
macro_rules! isolated_test {
    ($(#[$meta:meta])* async fn $name:ident() $body:block) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            $crate::isolation::isolated(concat!(module_path!(), "::", stringify!($name)), || async move $body);
        }
    };
}

/// Runs `body` inside a loopback-only network namespace. `test_path` is the test's
/// `module_path!()::name` (the crate's own name first, as `module_path!` writes it).
pub fn isolated<F, Fut>(test_path: &str, body: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    // libtest names tests without the crate: `it::instances_api::x` → `instances_api::x`.
    let name = test_path.split_once("::").map_or(test_path, |(_, rest)| rest);
    if std::env::var_os(ISOLATED_ENV).is_some() {
        assert_only_loopback();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(body());
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", "ip link set lo up && exec \"$@\"", "sh"])
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(ISOLATED_ENV, "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `unshare` (util-linux) for the isolated test {name}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the isolated test {name} failed (it needs root for `unshare --net`):\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the isolated run of {name} did not run exactly that test:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}

/// Panics unless this process's network namespace has no interface but `lo`
/// (`/proc/self/net/dev` is per namespace, unlike `/sys/class/net`).
fn assert_only_loopback() {
    let dev = std::fs::read_to_string("/proc/self/net/dev").unwrap();
    let interfaces: Vec<&str> = dev.lines().skip(2).filter_map(|line| line.split(':').next()).map(str::trim).collect();
    assert_eq!(interfaces, ["lo"], "{ISOLATED_ENV} is set but this network namespace is not loopback-only");
}
