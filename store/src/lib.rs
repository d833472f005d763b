//! noex-store: the embedded reactive store (see `shared/spec/STORE.md`).
