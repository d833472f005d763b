//! The browser console (`http.console`): a hand-written static page (`server/console/`) and
//! the npm package of the wasm client it runs on (`client-wasm/pkg`, made by
//! `client-wasm/build-pkg`), embedded in the binary when it is built with the `console`
//! feature and served under `/console/` by `endpoints`. Without the feature nothing is
//! embedded and `http.console` is a config error.

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

/// Whether this binary carries the console (built with the `console` feature).
pub(crate) const BUILT_IN: bool = cfg!(feature = "console");

/// The headers of every console answer: a Content-Security-Policy that lets the page run
/// only its own scripts (and compile the client's wasm), open WebSockets and fetch
/// `/metrics`, and nothing inline, framed or posted elsewhere.
pub(crate) const HEADERS: &str = concat!(
    "Content-Security-Policy: default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; ",
    "style-src 'self'; img-src 'self'; connect-src 'self' ws: wss:; base-uri 'none'; ",
    "form-action 'none'; frame-ancestors 'none'\r\n",
    "X-Content-Type-Options: nosniff\r\n",
    "Referrer-Policy: no-referrer\r\n",
    "X-Frame-Options: DENY\r\n",
);

/// One embedded file.
#[derive(Debug)]
pub(crate) struct Asset {
    /// Its `Content-Type`.
    pub(crate) content_type: &'static str,
    /// Its bytes.
    pub(crate) body: &'static [u8],
}

/// The embedded file served at `path` (a path under `/console/`, the prefix removed):
/// `""` and `index.html` are the page.
pub(crate) fn asset(path: &str) -> Option<Asset> {
    embedded::asset(path)
}

#[cfg(feature = "console")]
mod embedded {
    //! The files, embedded at compile time (`build.rs` checks that the npm package exists).
    use super::Asset;

    const HTML: &str = "text/html; charset=utf-8";
    const JS: &str = "text/javascript; charset=utf-8";

    /// The package file `$path` of `client-wasm/pkg`.
    macro_rules! pkg {
        ($path:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../client-wasm/pkg/",
                $path
            ))
        };
    }

    pub(super) fn asset(path: &str) -> Option<Asset> {
        let (content_type, body): (&'static str, &'static [u8]) = match path {
            "" | "index.html" => (HTML, include_bytes!("../console/index.html")),
            "console.js" => (JS, include_bytes!("../console/console.js")),
            "console.css" => (
                "text/css; charset=utf-8",
                include_bytes!("../console/console.css"),
            ),
            "favicon.svg" => ("image/svg+xml", include_bytes!("../console/favicon.svg")),
            "pkg/index.js" => (JS, pkg!("index.js")),
            "pkg/wasm/noex_client_wasm.js" => (JS, pkg!("wasm/noex_client_wasm.js")),
            "pkg/wasm/noex_client_wasm_bg.wasm" => {
                ("application/wasm", pkg!("wasm/noex_client_wasm_bg.wasm"))
            }
            _ => return None,
        };
        Some(Asset { content_type, body })
    }
}

#[cfg(not(feature = "console"))]
mod embedded {
    //! Built without the `console` feature: nothing embedded.
    use super::Asset;

    pub(super) fn asset(_path: &str) -> Option<Asset> {
        None
    }
}

/// Files at least this large (the client's wasm, its glue) count against an address's
/// [`AssetLimiter`] budget; the page's own small files do not.
pub(crate) const LARGE_ASSET_BYTES: usize = 64 * 1024;
/// Large files one address may fetch per [`ASSET_WINDOW_MS`]: a page load takes two.
pub(crate) const LARGE_ASSETS_PER_WINDOW: u32 = 20;
/// The window of [`LARGE_ASSETS_PER_WINDOW`].
pub(crate) const ASSET_WINDOW_MS: u64 = 60_000;
/// Addresses remembered at once (expired windows are swept when full; while it is still
/// full, new addresses are refused).
const MAX_TRACKED: usize = 4_096;

/// Bounds how often one address fetches the console's large files: each answer is a
/// 300 KB copy for a request of a few bytes, and 6 threads fetching the wasm 4 400 times a
/// second put other clients' `store.get` p99 at 64 ms (red team round 11).
#[derive(Debug, Default)]
pub(crate) struct AssetLimiter {
    windows: Mutex<HashMap<IpAddr, (u64, u32)>>,
}

impl AssetLimiter {
    /// Counts a fetch of a large file by `ip` (already reduced by `client_key`) at `now_ms`;
    /// `Err(retry_after_ms)` past the budget.
    pub(crate) fn fetch(&self, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        let mut windows = self.windows.lock();
        let live = |start: u64| now_ms < start.saturating_add(ASSET_WINDOW_MS);
        if !windows.contains_key(&ip) && windows.len() >= MAX_TRACKED {
            windows.retain(|_, (start, _)| live(*start));
            if windows.len() >= MAX_TRACKED {
                // Refused until the soonest window ends: evicting the oldest let 6 000
                // addresses in rotation fetch without limit (red team round 12).
                let soonest = windows
                    .values()
                    .map(|(start, _)| *start)
                    .min()
                    .unwrap_or(now_ms);
                return Err(soonest
                    .saturating_add(ASSET_WINDOW_MS)
                    .saturating_sub(now_ms)
                    .max(1));
            }
        }
        let (start, count) = windows.entry(ip).or_insert((now_ms, 0));
        if !live(*start) {
            *start = now_ms;
            *count = 0;
        }
        if *count >= LARGE_ASSETS_PER_WINDOW {
            return Err(start
                .saturating_add(ASSET_WINDOW_MS)
                .saturating_sub(now_ms)
                .max(1));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_fetches_a_bounded_number_of_large_files_per_window() {
        let limiter = AssetLimiter::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..LARGE_ASSETS_PER_WINDOW {
            assert_eq!(limiter.fetch(ip, 100), Ok(()));
        }
        assert_eq!(limiter.fetch(ip, 1_100), Err(ASSET_WINDOW_MS - 1_000));
        assert_eq!(
            limiter.fetch([10, 0, 0, 2].into(), 1_100),
            Ok(()),
            "another address"
        );
        assert_eq!(
            limiter.fetch(ip, 100 + ASSET_WINDOW_MS),
            Ok(()),
            "a new window"
        );
    }

    #[test]
    fn the_table_is_bounded_and_a_full_one_refuses_new_addresses() {
        let limiter = AssetLimiter::default();
        for i in 0..MAX_TRACKED as u32 {
            assert_eq!(limiter.fetch(IpAddr::V4(i.into()), 0), Ok(()));
        }
        let newcomer = IpAddr::V4((MAX_TRACKED as u32 + 1).into());
        assert_eq!(limiter.fetch(newcomer, 10), Err(ASSET_WINDOW_MS - 10));
        assert_eq!(limiter.windows.lock().len(), MAX_TRACKED);
        // Known addresses keep their budget, and once windows end there is room again.
        assert_eq!(limiter.fetch(IpAddr::V4(0.into()), 10), Ok(()));
        assert_eq!(limiter.fetch(newcomer, ASSET_WINDOW_MS), Ok(()));
    }
}
