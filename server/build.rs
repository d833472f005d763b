//! Build script: with the `console` feature, checks that `client-wasm/build-pkg` has made
//! the npm package the console embeds (`client-wasm/pkg`), and says how to make it when it
//! has not (instead of a bare "couldn't read" from `include_bytes!`).

use std::path::Path;

/// The package files `src/console.rs` embeds.
const PKG_FILES: [&str; 3] = [
    "index.js",
    "wasm/noex_client_wasm.js",
    "wasm/noex_client_wasm_bg.wasm",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_CONSOLE").is_none() {
        return;
    }
    let Some(manifest_dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return;
    };
    let pkg = Path::new(&manifest_dir).join("../client-wasm/pkg");
    let missing: Vec<_> = PKG_FILES
        .iter()
        .map(|file| pkg.join(file))
        .filter(|path| !path.is_file())
        .collect();
    for file in PKG_FILES {
        println!("cargo:rerun-if-changed={}", pkg.join(file).display());
    }
    if !missing.is_empty() {
        panic!(
            "the `console` feature embeds the npm package of the wasm client, and {} is \
             missing: run `client-wasm/build-pkg` first, then \
             `cargo build -p noex-server --features console`",
            missing[0].display()
        );
    }
}
