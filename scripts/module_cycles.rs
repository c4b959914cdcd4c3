//! The module-cycle check of scripts/check-cycles.sh: inside a crate, no two top-level
//! modules may use each other, directly or through others.
//!
//! Usage: `module_cycles <crate>/src...`. For each crate, the nodes are the modules
//! `lib.rs` declares (`mod x;`, any visibility, any `cfg`), each with every file under it
//! (`x.rs`, `x/**.rs`); an edge `a -> b` is a path in `a`'s code that starts `crate::b`
//! (also inside `use crate::{…}` groups) or names an item that `lib.rs` re-exports from `b`
//! (`pub use b::Item;`). Comments are left out (intra-doc links are not uses); `super::`
//! paths stay inside a module and are not followed. Prints each cycle with one use per edge
//! and exits 1 when there is one. Standard library only: compiled by `rustc` in CI.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One use of another module: the file and line it is on.
type Site = (PathBuf, usize);

fn main() -> ExitCode {
    let mut broken = false;
    for src in std::env::args().skip(1) {
        match check_crate(Path::new(&src)) {
            Ok(cycles) if cycles.is_empty() => println!("{src}: no module cycles"),
            Ok(cycles) => {
                broken = true;
                for cycle in cycles {
                    println!("{src}: modules in a cycle: {}", cycle.concat());
                }
            }
            Err(message) => {
                eprintln!("{src}: {message}");
                return ExitCode::from(2);
            }
        }
    }
    if broken {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The cycles of one crate, each as `a -> b (file:line) -> … -> a` steps.
fn check_crate(src: &Path) -> Result<Vec<Vec<String>>, String> {
    let lib = read(&src.join("lib.rs"))?;
    let modules = declared_modules(&lib);
    let reexports = reexported_items(&lib, &modules);
    let mut edges: BTreeMap<String, BTreeMap<String, Site>> = BTreeMap::new();
    for module in &modules {
        let targets = edges.entry(module.clone()).or_default();
        for file in module_files(src, module) {
            let code = without_comments(&read(&file)?);
            for (line, name) in crate_paths(&code) {
                let target = if modules.contains(&name) {
                    Some(name)
                } else {
                    reexports.get(&name).cloned()
                };
                if let Some(target) = target.filter(|t| t != module) {
                    targets.entry(target).or_insert((file.clone(), line));
                }
            }
        }
    }
    Ok(strongly_connected(&edges)
        .into_iter()
        .filter(|component| component.len() > 1)
        .map(|component| describe(&component, &edges))
        .collect())
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `mod x;` declarations of `lib.rs`, whatever their visibility and attributes.
fn declared_modules(lib: &str) -> BTreeSet<String> {
    without_comments(lib)
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("pub(crate) mod "))
                .or_else(|| line.strip_prefix("mod "))?;
            rest.strip_suffix(';').map(|name| name.trim().to_string())
        })
        .collect()
}

/// Items `lib.rs` re-exports from a module (`pub use m::Item;`, `pub use m::{A, B as C};`):
/// a use of `crate::Item` is a use of `m`.
fn reexported_items(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut items = BTreeMap::new();
    for statement in without_comments(lib).split(';') {
        let Some(rest) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, tail)) = rest.split_once("::") else {
            continue;
        };
        if !modules.contains(module) {
            continue;
        }
        let tail = tail.trim().trim_start_matches('{').trim_end_matches('}');
        for item in tail.split(',') {
            let name = item.rsplit(" as ").next().unwrap_or(item);
            let name = name.rsplit("::").next().unwrap_or(name).trim();
            if !name.is_empty() {
                items.insert(name.to_string(), module.to_string());
            }
        }
    }
    items
}

/// Every `.rs` file of a top-level module: `m.rs` and everything under `m/`.
fn module_files(src: &Path, module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        files.push(file);
    }
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The code without `//` comments (doc comments included) and `/* */` blocks; string
/// literals are kept as they are, so `"http://…"` ends its line early (harmless here).
fn without_comments(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            let end = after.find("*/").map_or(after.len(), |i| i + 2);
            out.extend(after[..end].chars().filter(|c| *c == '\n'));
            rest = &after[end..];
        } else if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            rest = &rest[end..];
        } else {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The first segment after each `crate::` (each item's first segment in a
/// `crate::{…}` group), with its line number.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (offset, _) in code.match_indices("crate::") {
        let before = code[..offset].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `damocles_crate::` and the like
        }
        let line = code[..offset].matches('\n').count() + 1;
        let after = &code[offset + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            for item in top_level_items(group) {
                found.push((line, identifier(item.trim_start())));
            }
        } else {
            found.push((line, identifier(after)));
        }
    }
    found.retain(|(_, name)| !name.is_empty());
    found
}

/// The comma-separated items of a `{…}` group up to its closing brace.
fn top_level_items(group: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0usize, 0usize, Vec::new());
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Tarjan's strongly connected components of the module graph.
fn strongly_connected(edges: &BTreeMap<String, BTreeMap<String, Site>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, Site>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.edges.get(node).into_iter().flat_map(|t| t.keys()) {
                let next = next.as_str();
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    component.push(member.to_string());
                    if member == node {
                        break;
                    }
                }
                component.sort();
                self.components.push(component);
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in edges.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.components
}

/// The uses inside one strongly connected component: `a -> b (file:line)` for each edge.
fn describe(
    component: &[String],
    edges: &BTreeMap<String, BTreeMap<String, Site>>,
) -> Vec<String> {
    let members: BTreeSet<&String> = component.iter().collect();
    let mut steps = Vec::new();
    for from in component {
        for (to, (file, line)) in edges.get(from).into_iter().flatten() {
            if members.contains(to) {
                steps.push(format!("\n    {from} uses {to} ({}:{line})", file.display()));
            }
        }
    }
    steps
}
