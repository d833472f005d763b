//! Every link in the repository's Markdown resolves: a relative link names a file or folder
//! of the repository (and its `#anchor` a heading of that file, in GitHub's slug form), an
//! absolute `http(s)` link goes only to the few places in [`ALLOWED_EXTERNAL`], and no doc
//! comment in the Rust sources sends the reader to the developers' specification folder, which
//! is not in the repository (a path starting with `shared` and `spec`).
//!
//! It lives with the server's tests because the server is the crate whose documentation the
//! guide (`docs/`) describes; it reads files only and starts nothing.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Absolute links a document may contain: the original TypeScript project. Anything else
/// outside the repository does not belong in the docs a clone ships with.
const ALLOWED_EXTERNAL: &[&str] = &["https://github.com/hamicek/"];

/// Directories never walked: build output, installed packages, git's own data.
fn skipped_dir(name: &str) -> bool {
    name.starts_with("target") || name == "node_modules" || name.starts_with('.')
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server crate lives in the workspace")
        .to_path_buf()
}

/// Every file under `dir` whose name ends with `ext`, outside the skipped directories.
fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !skipped_dir(name) {
                files(&path, ext, out);
            }
        } else if name.ends_with(ext) {
            out.push(path);
        }
    }
}

/// One line of a Markdown file as the renderer sees it for links: `None` inside fenced
/// code blocks and HTML comments; otherwise the line with inline code spans removed.
fn prose_lines(text: &str) -> Vec<(usize, Option<String>)> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    let mut in_comment = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(open) = &fence {
            if trimmed.starts_with(open.as_str()) {
                fence = None;
            }
            out.push((i + 1, None));
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            let marker: String = trimmed
                .chars()
                .take_while(|c| *c == '`' || *c == '~')
                .collect();
            fence = Some(marker);
            out.push((i + 1, None));
            continue;
        }
        // HTML comments (the guide's `<!-- check: ... -->` markers) render nothing.
        let mut visible = String::new();
        let mut rest = line;
        loop {
            if in_comment {
                match rest.find("-->") {
                    Some(end) => {
                        rest = &rest[end + 3..];
                        in_comment = false;
                    }
                    None => break,
                }
            } else {
                match rest.find("<!--") {
                    Some(start) => {
                        visible.push_str(&rest[..start]);
                        rest = &rest[start + 4..];
                        in_comment = true;
                    }
                    None => {
                        visible.push_str(rest);
                        break;
                    }
                }
            }
        }
        out.push((i + 1, Some(strip_code_spans(&visible))));
    }
    out
}

/// The line without its inline code spans (`` `...` ``), which are never links.
fn strip_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
        let after = &rest[start + ticks..];
        let closing = "`".repeat(ticks);
        match after.find(&closing) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                // An unmatched backtick is literal text.
                out.push_str(&rest[start..start + ticks]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The link destinations on one prose line: inline links and images `[text](dest)`,
/// reference definitions `[label]: dest`, autolinks `<https://...>` and bare URLs (which
/// GitHub turns into links).
fn destinations(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        if let Some(close) = trimmed.find("]:") {
            let dest = trimmed[close + 2..].split_whitespace().next().unwrap_or("");
            if !dest.is_empty() {
                out.push(dest.trim_matches(['<', '>']).to_owned());
                return out;
            }
        }
    }
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        // The destination ends at the matching `)` (parentheses may nest once).
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = i;
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        let inside = after[..end].trim();
        let dest = match inside.strip_prefix('<') {
            Some(angled) => angled.split('>').next().unwrap_or(""),
            None => inside.split_whitespace().next().unwrap_or(""),
        };
        out.push(dest.to_owned());
        rest = &after[end.min(after.len())..];
    }
    // Autolinks and bare URLs, outside the inline links found above.
    let mut without_links = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        without_links.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        rest = after.find(')').map_or("", |end| &after[end + 1..]);
    }
    without_links.push_str(rest);
    for scheme in ["https://", "http://"] {
        let mut rest = without_links.as_str();
        while let Some(at) = rest.find(scheme) {
            let url: String = rest[at..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, '>' | ')' | '"' | '\''))
                .collect();
            out.push(url.trim_end_matches(['.', ',', ';', ':']).to_owned());
            rest = &rest[at + scheme.len()..];
        }
    }
    out
}

/// The anchor GitHub gives a heading: the rendered text lowercased, every character that
/// is not a letter, digit, space, `-` or `_` dropped, spaces turned into `-`.
fn slug(heading: &str) -> String {
    let rendered = render_inline(heading);
    rendered
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Heading text as rendered: code spans keep their content, links their text, emphasis
/// markers go.
fn render_inline(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match (after.find("]("), after.find(')')) {
            (Some(close), Some(paren)) if close < paren => {
                out.push_str(&after[..close]);
                rest = &after[paren + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace(['`', '*'], "")
}

/// Every heading anchor of a Markdown file (duplicates numbered as GitHub does).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose_lines_keep_code(text) {
        let Some(line) = line else { continue };
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(line[hashes..].trim().trim_end_matches('#'));
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// Lines outside fenced code blocks, unchanged (headings keep their code spans).
fn prose_lines_keep_code(text: &str) -> Vec<(usize, Option<String>)> {
    let mut fence: Option<String> = None;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let trimmed = line.trim_start();
            if let Some(open) = &fence {
                if trimmed.starts_with(open.as_str()) {
                    fence = None;
                }
                return (i + 1, None);
            }
            if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
                fence = Some(
                    trimmed
                        .chars()
                        .take_while(|c| *c == '`' || *c == '~')
                        .collect(),
                );
                return (i + 1, None);
            }
            (i + 1, Some(line.to_owned()))
        })
        .collect()
}

/// Why `dest`, written in `file`, does not resolve; `None` when it does.
fn broken(root: &Path, file: &Path, dest: &str) -> Option<String> {
    if dest.is_empty() {
        return Some("empty link".into());
    }
    if dest.starts_with("http://") || dest.starts_with("https://") {
        return (!ALLOWED_EXTERNAL.iter().any(|a| dest.starts_with(a))).then(|| {
            format!(
                "points outside the repository (allowed: {})",
                ALLOWED_EXTERNAL.join(", ")
            )
        });
    }
    if let Some(colon) = dest.find(':') {
        let scheme = &dest[..colon];
        if !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+')
        {
            return Some(format!("a `{scheme}:` link points outside the repository"));
        }
    }
    let (path, anchor) = match dest.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (dest, None),
    };
    let target = if path.is_empty() {
        file.to_path_buf()
    } else if path.starts_with('/') {
        root.join(path.trim_start_matches('/'))
    } else {
        file.parent().expect("a file has a folder").join(path)
    };
    let Ok(target) = target.canonicalize() else {
        return Some(format!("{} does not exist", target.display()));
    };
    if !target.starts_with(root) {
        return Some("leaves the repository".into());
    }
    let anchor = anchor?;
    if target.is_dir() || target.extension().and_then(|e| e.to_str()) != Some("md") {
        return Some("an anchor on something that is not a Markdown file".into());
    }
    let text = std::fs::read_to_string(&target).expect("readable Markdown");
    let known = anchors(&text);
    (!known.contains(anchor)).then(|| {
        format!(
            "no heading with anchor #{anchor} in {} (anchors: {})",
            target.strip_prefix(root).unwrap_or(&target).display(),
            known.into_iter().collect::<Vec<_>>().join(", ")
        )
    })
}

#[test]
fn every_markdown_link_resolves_inside_the_repository() {
    let root = root().canonicalize().expect("workspace root");
    let mut markdown = Vec::new();
    files(&root, ".md", &mut markdown);
    assert!(
        markdown.len() > 10,
        "found only {} Markdown files",
        markdown.len()
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &markdown {
        let text = std::fs::read_to_string(file).expect("readable Markdown");
        for (line, prose) in prose_lines(&text) {
            let Some(prose) = prose else { continue };
            for dest in destinations(&prose) {
                checked += 1;
                if let Some(why) = broken(&root, file, &dest) {
                    problems.push(format!(
                        "{}:{line}: ({dest}) {why}",
                        file.strip_prefix(&root).unwrap_or(file).display()
                    ));
                }
            }
        }
    }
    assert!(checked > 50, "found only {checked} links");
    assert!(
        problems.is_empty(),
        "{} broken link(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn no_doc_comment_points_to_a_specification_outside_the_repository() {
    let root = root();
    let mut sources = Vec::new();
    files(&root, ".rs", &mut sources);
    assert!(
        sources.len() > 50,
        "found only {} Rust files",
        sources.len()
    );
    let mut problems = Vec::new();
    for file in &sources {
        let text = std::fs::read_to_string(file).expect("readable source");
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            let doc = trimmed.starts_with("//!") || trimmed.starts_with("///");
            if doc && trimmed.contains("shared/spec") {
                problems.push(format!(
                    "{}:{}: {}",
                    file.strip_prefix(&root).unwrap_or(file).display(),
                    i + 1,
                    trimmed
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "doc comments pointing outside the repository (link docs/reference/*.md instead):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_link_reader_understands_the_markdown_it_checks() {
    assert_eq!(
        destinations("see [a](b.md#c) and ![img](d.png \"title\") and <https://x.y/z>."),
        ["b.md#c", "d.png", "https://x.y/z"]
    );
    assert_eq!(destinations("[label]: ../e.md"), ["../e.md"]);
    assert_eq!(
        destinations("bare https://example.org/x, then"),
        ["https://example.org/x"]
    );
    assert_eq!(strip_code_spans("a `[x](y)` b ``c`d`` e"), "a  b  e");
    assert_eq!(
        slug("Limits against hostile clients"),
        "limits-against-hostile-clients"
    );
    assert_eq!(slug("1. The protocol"), "1-the-protocol");
    assert_eq!(slug("`store.*` operations"), "store-operations");
    assert_eq!(slug("Links: [the guide](x.md)"), "links-the-guide");
    let text = "# A\n## A\n```\n# not a heading\n```\n### B `c`\n";
    assert_eq!(
        anchors(text).into_iter().collect::<Vec<_>>(),
        ["a", "a-1", "b-c"]
    );
    let lines = prose_lines("x <!-- [a](gone.md) --> y\n<!--\n[b](gone.md)\n-->\nz");
    let visible: Vec<_> = lines.into_iter().filter_map(|(_, l)| l).collect();
    assert_eq!(visible, ["x  y", "", "", "", "z"]);
}
