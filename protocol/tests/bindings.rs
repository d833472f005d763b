//! The committed `bindings/` folder must equal what `export_typescript` generates now.
//! Run with `UPDATE_BINDINGS=1` to rewrite it after changing a wire type.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn read_tree(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "node_modules") {
                    continue;
                }
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "ts")
                && path.file_name().is_some_and(|n| n != "check.ts")
            {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out
}

#[test]
fn committed_bindings_match_the_wire_types() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bindings");
    let fresh = std::env::temp_dir().join(format!("noex-bindings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh).unwrap();
    noex_protocol::export_typescript(&fresh).unwrap();
    let generated = read_tree(&fresh);
    assert!(
        generated.len() > 40,
        "export produced only {} files",
        generated.len()
    );

    if std::env::var_os("UPDATE_BINDINGS").is_some() {
        for (rel, _) in read_tree(&committed) {
            std::fs::remove_file(committed.join(rel)).unwrap();
        }
        for (rel, text) in &generated {
            let path = committed.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    let existing = read_tree(&committed);
    let _ = std::fs::remove_dir_all(&fresh);
    let missing: Vec<_> = generated
        .keys()
        .filter(|k| !existing.contains_key(*k))
        .collect();
    let stale: Vec<_> = existing
        .keys()
        .filter(|k| !generated.contains_key(*k))
        .collect();
    let changed: Vec<_> = generated
        .iter()
        .filter(|(k, v)| existing.get(*k).is_some_and(|e| e != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty() && changed.is_empty(),
        "bindings/ is out of date (run `UPDATE_BINDINGS=1 cargo test -p noex-protocol --test bindings`):\n\
         missing: {missing:?}\nstale: {stale:?}\nchanged: {changed:?}"
    );
}
