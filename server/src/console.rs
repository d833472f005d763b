//! The browser console (`http.console`): a hand-written static page (`server/console/`) and
//! the npm package of the wasm client it runs on (`client-wasm/pkg`, made by
//! `client-wasm/build-pkg`), embedded in the binary when it is built with the `console`
//! feature and served under `/console/` by `endpoints`. Without the feature nothing is
//! embedded and `http.console` is a config error.

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
