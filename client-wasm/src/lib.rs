//! noex-client-wasm: the noex client core compiled to WebAssembly.
