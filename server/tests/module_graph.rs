//! The module graph of a crate, read from its files: which top-level module of `src/`
//! refers to which (`crate::x`, `use crate::{x, y::z}`, and items the crate root
//! re-exports from a module), and the import cycles in it. The server, store and rules
//! crates must have none.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Edges between the top-level modules of a crate: module → modules it refers to.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The repository's directory of crate `name` (`server`, `store`, `rules`...).
fn crate_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server crate lives in the repository")
        .join(name)
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// `text` without its `//` comments (doc comments included: a link in prose is not an
/// import). String literals holding `//` are rare enough in these crates to ignore.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first path segments after every `crate::` in `code`, including each member of a
/// `crate::{a, b::c, d::{e, f}}` group.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(is_ident_char) {
            continue; // e.g. `noex_crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            // The group up to its closing brace, split at its top-level commas; each
            // member's first identifier is a module (or an item of the root).
            let mut depth = 0usize;
            let mut end = group.len();
            let mut members = Vec::new();
            let mut member_start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        end = i;
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        members.push(&group[member_start..i]);
                        member_start = i + 1;
                    }
                    _ => {}
                }
            }
            members.push(&group[member_start.min(end)..end]);
            for member in members {
                let ident: String = member
                    .trim()
                    .chars()
                    .take_while(|c| is_ident_char(*c))
                    .collect();
                if !ident.is_empty() {
                    found.insert(ident);
                }
            }
        } else {
            let ident: String = rest.chars().take_while(|c| is_ident_char(*c)).collect();
            if !ident.is_empty() {
                found.insert(ident);
            }
        }
    }
    found
}

/// Items the crate root re-exports, by name, with the module they come from
/// (`pub use access::authorize;`, `pub use auth::{A, B};`).
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let code = without_comments(lib);
    for statement in code.split(';') {
        let statement = statement.trim();
        let Some(path) = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let path = path.trim().trim_start_matches("self::");
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item
                .split(" as ")
                .last()
                .unwrap_or(item)
                .trim()
                .split("::")
                .last()
                .unwrap_or("")
                .trim()
                .to_owned();
            if !name.is_empty() {
                map.insert(name, module.trim().to_owned());
            }
        }
    }
    map
}

/// The top-level module a file of `src/` belongs to (`ops/store.rs` → `ops`); `None` for
/// the crate roots.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        name => Some(name.trim_end_matches(".rs").to_owned()),
    }
}

/// The graph of `crate::` references between the top-level modules of `crate_dir/src`.
fn module_graph(crate_dir: &Path) -> Graph {
    let src = crate_dir.join("src");
    let files = rust_files(&src);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(&src, f)).collect();
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let reexports = root_reexports(&lib);
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("readable source");
        for reference in crate_references(&without_comments(&text)) {
            let target = if modules.contains(&reference) {
                Some(reference)
            } else {
                reexports.get(&reference).cloned()
            };
            if let Some(target) = target.filter(|t| *t != module && modules.contains(t)) {
                graph.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    graph
}

/// Every import cycle of `graph`: one per strongly connected component of more than one
/// module, as a path `a → b → … → a` through it.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    tangles(graph)
        .iter()
        .map(|component| {
            let members: Vec<&str> = component.iter().map(String::as_str).collect();
            cycle_through(graph, &members)
        })
        .collect()
}

/// The strongly connected components of `graph` of more than one module (each a set of
/// modules that all reach each other), members sorted.
fn tangles(graph: &Graph) -> Vec<Vec<String>> {
    // Tarjan's algorithm, recursive: module graphs are small.
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        components: Vec<Vec<&'g str>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w);
                if w == v {
                    break;
                }
            }
            s.components.push(component);
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state
        .components
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|component| {
            let mut members: Vec<String> = component.iter().map(|m| (*m).to_owned()).collect();
            members.sort();
            members
        })
        .collect()
}

/// A cycle inside `component` (a strongly connected set), starting at its first module
/// by name: breadth-first back to the start, staying inside the component.
fn cycle_through(graph: &Graph, component: &[&str]) -> Vec<String> {
    let inside: BTreeSet<&str> = component.iter().copied().collect();
    let start = *inside.iter().next().expect("a component is not empty");
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !inside.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![start.to_owned(), v.to_owned()];
                let mut at = v;
                while at != start {
                    at = came_from[at];
                    path.push(at.to_owned());
                }
                path.reverse();
                return path;
            }
            if !came_from.contains_key(w) && w != start {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    component.iter().map(|s| (*s).to_owned()).collect()
}

/// The cycles of `graph`, one line each: a path through each tangle and all its members.
fn describe(graph: &Graph) -> String {
    tangles(graph)
        .iter()
        .zip(cycles(graph))
        .map(|(members, cycle)| format!("{} (tangled: {})", cycle.join(" → "), members.join(", ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails with every cycle of crate `name` (a directory of the repository), one per line.
fn a_crate_without_import_cycles(name: &str) {
    let graph = module_graph(&crate_dir(name));
    assert!(graph.len() > 3, "{name}: no modules found");
    assert!(
        cycles(&graph).is_empty(),
        "import cycles between the modules of {name}/src:\n{}",
        describe(&graph)
    );
}

#[test]
fn the_server_has_no_import_cycles() {
    a_crate_without_import_cycles("server");
}

#[test]
fn the_servers_operation_families_sit_below_the_router() {
    let graph = module_graph(&crate_dir("server"));
    let ops = &graph["ops"];
    for above in ["router", "connection", "connection_state", "server"] {
        assert!(!ops.contains(above), "ops refers to {above}: {ops:?}");
    }
    assert!(graph["router"].contains("ops"));
    assert!(graph["connection"].contains("router"));
}

#[test]
fn the_store_has_no_import_cycles() {
    a_crate_without_import_cycles("store");
}

#[test]
fn the_rules_engine_has_no_import_cycles() {
    a_crate_without_import_cycles("rules");
}

/// The store's layers: the disk layer and the query registry know nothing of the
/// `Store` handle or of the dispatcher, and the write path (`store`) knows nothing of
/// what sits on it (handles, reactive queries, transactions, the TTL sweep).
#[test]
fn the_stores_disk_layer_and_registry_sit_below_the_store() {
    let graph = module_graph(&crate_dir("store"));
    for below in ["persistence", "registry", "data", "query"] {
        for above in ["store", "reactive", "start", "handle", "transaction", "ttl"] {
            assert!(
                !graph[below].contains(above),
                "{below} refers to {above}: {:?}",
                graph[below]
            );
        }
    }
    for above in ["handle", "reactive", "transaction", "ttl", "start"] {
        assert!(!graph["store"].contains(above), "store refers to {above}");
    }
    assert!(graph["store"].contains("persistence"));
    assert!(graph["start"].contains("reactive"));
}

/// The rule engine's runner and timers take what they need as arguments: neither refers
/// to the engine, which drives both.
#[test]
fn the_rules_runner_and_timers_sit_below_the_engine() {
    let graph = module_graph(&crate_dir("rules"));
    for below in ["runner", "timers", "footprint", "budget"] {
        assert!(
            !graph[below].contains("engine"),
            "{below} refers to engine: {:?}",
            graph[below]
        );
    }
    assert!(!graph["timers"].contains("runner"));
    assert!(graph["engine"].contains("runner"));
    assert!(graph["engine"].contains("timers"));
}

#[test]
fn references_are_read_from_paths_groups_and_reexports() {
    let code = without_comments(
        "use crate::alpha::Thing;\n\
         use crate::{beta, gamma::{G, H}, Reexported};\n\
         // crate::commented\n\
         fn f() { crate::delta::call(); my_crate::epsilon(); }",
    );
    let refs = crate_references(&code);
    let expected: BTreeSet<String> = ["alpha", "beta", "gamma", "Reexported", "delta"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(refs, expected);
    let reexports = root_reexports("pub use alpha::{A, B as C};\npub use beta::D;\nmod x;");
    assert_eq!(reexports.get("A").map(String::as_str), Some("alpha"));
    assert_eq!(reexports.get("C").map(String::as_str), Some("alpha"));
    assert_eq!(reexports.get("D").map(String::as_str), Some("beta"));
}

#[test]
fn a_cycle_is_found_and_spelled_out() {
    let mut graph = Graph::new();
    let edge = |g: &mut Graph, a: &str, b: &str| {
        g.entry(a.into()).or_default().insert(b.into());
        g.entry(b.into()).or_default();
    };
    edge(&mut graph, "a", "b");
    edge(&mut graph, "b", "c");
    edge(&mut graph, "c", "a");
    edge(&mut graph, "c", "d");
    edge(&mut graph, "e", "d");
    let found = cycles(&graph);
    assert_eq!(found, vec![vec!["a", "b", "c", "a"]]);
    assert_eq!(tangles(&graph), vec![vec!["a", "b", "c"]]);
    assert!(describe(&graph).contains("a → b → c → a (tangled: a, b, c)"));
    graph.get_mut("c").expect("c").remove("a");
    assert!(cycles(&graph).is_empty());
}
