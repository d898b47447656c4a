//! No module cycles inside the library crates: within `alig`, `zoo`, `data` and `train`, the
//! top-level modules (`src/X.rs` or `src/X/`) that name each other through `crate::` paths form an
//! acyclic graph. A cycle means two files that can only be read together; the fix is to move the
//! shared piece into a module of its own.
//!
//! The scan reads the sources as text: comments (doc comments too) are skipped, `crate::{a, b}`
//! groups are expanded, and a name the crate root re-exports (`crate::Dnc`) counts as the module it
//! comes from. `super::` inside a folder stays within its top-level module and is not an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The crate's sources without comments, per top-level module (the root files under `"lib"`).
fn sources(src: &Path) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut files = vec![];
    collect(src, &mut files);
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
        let module = match first.strip_suffix(".rs") {
            Some("lib") => "lib".to_string(),
            Some("main") => continue, // the binary is its own crate
            Some(m) => m.to_string(),
            None => first,
        };
        let text = strip_comments(&fs::read_to_string(&f).unwrap());
        out.entry(module).or_default().push_str(&text);
    }
    out
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Drops `// ...` to the end of the line and `/* ... */`, keeping string literals intact.
fn strip_comments(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut in_str) = (0, false);
    while i < b.len() {
        let c = b[i] as char;
        if in_str {
            out.push(c);
            if c == '\\' && i + 1 < b.len() {
                out.push(b[i + 1] as char);
                i += 1;
            } else if c == '"' {
                in_str = false;
            }
        } else if text[i..].starts_with("//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        } else if text[i..].starts_with("/*") {
            i += text[i..].find("*/").map_or(b.len() - i, |e| e + 2);
            continue;
        } else if c == '"' && !(i > 0 && b[i - 1] == b'\'') {
            in_str = true;
            out.push(c);
        } else {
            out.push(c);
        }
        i += 1;
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The first path segment of every `crate::` path in `code` (`crate::{a, b::c}` gives `a` and `b`).
fn crate_paths(code: &str) -> Vec<String> {
    let mut names = vec![];
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = code[at + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut start = 0;
            for (k, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        names.push(ident(group[start..k].trim()).to_string());
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.push(ident(group[start..k].trim()).to_string());
                        start = k + 1;
                    }
                    _ => {}
                }
            }
        } else {
            names.push(ident(rest).to_string());
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// Names the crate root re-exports, with the module each comes from.
fn reexports(root: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for stmt in root.split(';') {
        let Some(path) = stmt.trim().strip_prefix("pub use ") else { continue };
        let path = path.trim().strip_prefix("crate::").unwrap_or(path.trim());
        let module = ident(path).to_string();
        if !modules.contains(&module) {
            continue;
        }
        let items = match (path.find('{'), path.rfind('}')) {
            (Some(a), Some(b)) => path[a + 1..b].split(',').map(str::to_string).collect(),
            _ => vec![path.rsplit("::").next().unwrap().to_string()],
        };
        for item in items {
            let name = item.rsplit(" as ").next().unwrap().trim();
            let name = name.rsplit("::").next().unwrap().trim();
            if !name.is_empty() && name != "self" {
                map.insert(name.to_string(), module.clone());
            }
        }
    }
    map
}

fn graph(crate_dir: &Path) -> Graph {
    let src = sources(&crate_dir.join("src"));
    let modules: BTreeSet<String> = src.keys().filter(|m| *m != "lib").cloned().collect();
    let exported = reexports(src.get("lib").map_or("", String::as_str), &modules);
    let mut g = Graph::new();
    for (module, code) in &src {
        let edges = g.entry(module.clone()).or_default();
        if module == "lib" {
            continue; // the root declares and re-exports the modules
        }
        for name in crate_paths(code) {
            let target = if modules.contains(&name) {
                name
            } else {
                exported.get(&name).cloned().unwrap_or_else(|| "lib".to_string())
            };
            if &target != module && target != "lib" {
                edges.insert(target);
            }
        }
    }
    g
}

/// One cycle of `g`, as the path of modules around it, if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(g: &Graph, m: &str, stack: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(k) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[k..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        stack.push(m.to_string());
        for next in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(g, next, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys().find_map(|m| visit(g, m, &mut vec![], &mut done))
}

#[test]
fn no_module_cycles_in_the_library_crates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cycles = vec![];
    for krate in ["alig", "zoo", "data", "train"] {
        if let Some(c) = find_cycle(&graph(&root.join(krate))) {
            cycles.push(format!("{krate}: {}", c.join(" -> ")));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_scan_finds_paths_groups_and_cycles() {
    let code =
        strip_comments("use crate::a::X; // crate::zz\nuse crate::{b, c::{D, E}};\nlet s = \"//\"; crate::d::f();");
    assert_eq!(crate_paths(&code), ["a", "b", "c", "d"]);
    let g: Graph = [("x", &["y"][..]), ("y", &["z"]), ("z", &["x"])]
        .iter()
        .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
        .collect();
    assert_eq!(find_cycle(&g).unwrap(), ["x", "y", "z", "x"]);
    let modules: BTreeSet<String> = ["dnc".to_string()].into();
    let map = reexports("pub use dnc::{Dnc, DncConfig as Cfg};\npub use crate::dnc::state::State;", &modules);
    assert_eq!(map.get("Cfg").map(String::as_str), Some("dnc"));
    assert_eq!(map.get("State").map(String::as_str), Some("dnc"));
}
