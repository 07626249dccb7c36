//! The architecture's rules, checked on the sources (`tests/tests/architecture.rs`
//! runs them in CI): no module of any crate imports one that imports it
//! back, and no product library depends on the netns testbed.
//!
//! Written here rather than run through `cargo-modules` (whose
//! `dependencies --acyclic` does the first check with rust-analyzer's full
//! name resolution): that tool takes minutes to build in every CI run, and
//! kxdp's code resolves with much less. What this reads of Rust:
//!
//! - a crate's modules are its files (`lib.rs`/`main.rs` the root,
//!   `a/mod.rs` or `a.rs` module `a`); inline `#[cfg(test)]` modules are
//!   left out (a test may reach into anything);
//! - a module *uses* another when it names one of its items: through a
//!   `use` declaration (a `pub use` too) or an inline path starting with
//!   `crate::`, `super::` or `self::`, or with the name of one of its own
//!   child modules;
//! - a name re-exported (`pub use a::B;` in module `m`) and named as `m::B`
//!   resolves to where `B` is defined, `a`: going through a re-export is not
//!   using the module that re-exports. Declaring a child (`mod a;`) is not
//!   using it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module: its path from the crate root (empty for the root).
pub type ModPath = Vec<String>;

/// One crate's modules and who uses whom.
#[derive(Debug, Default)]
pub struct ModuleGraph {
    /// Every module (file) of the crate.
    pub modules: BTreeSet<ModPath>,
    /// Module → the modules it uses (never itself).
    pub uses: BTreeMap<ModPath, BTreeSet<ModPath>>,
}

/// Display a module path as `crate::a::b`.
pub fn display(path: &ModPath) -> String {
    if path.is_empty() {
        "crate".to_string()
    } else {
        format!("crate::{}", path.join("::"))
    }
}

/// The module graph of the crate whose root file is `root` (`src/lib.rs`
/// or `src/main.rs`).
pub fn module_graph(root: &Path) -> std::io::Result<ModuleGraph> {
    let src = root.parent().unwrap_or(Path::new("."));
    let mut files: BTreeMap<ModPath, String> = BTreeMap::new();
    collect(src, root, &mut files)?;
    let modules: BTreeSet<ModPath> = files.keys().cloned().collect();
    let cleaned: BTreeMap<ModPath, String> = files
        .iter()
        .map(|(m, text)| {
            (
                m.clone(),
                strip_test_modules(&strip_comments_and_strings(text)),
            )
        })
        .collect();
    // Re-exports: (module, name) → the path it stands for, absolute; a
    // glob re-export (`pub use a::*`) → (module, "*") for each name `a`
    // defines.
    let mut reexports: BTreeMap<(ModPath, String), ModPath> = BTreeMap::new();
    let mut globs: Vec<(ModPath, ModPath)> = Vec::new();
    let mut imports: BTreeMap<ModPath, Vec<(bool, ModPath)>> = BTreeMap::new();
    for (m, text) in &cleaned {
        for (public, tree) in use_declarations(text) {
            for (path, alias) in expand_use_tree(&tree) {
                let Some(abs) = absolute(m, &path, &modules) else {
                    continue;
                };
                if public {
                    if abs.last().map(String::as_str) == Some("*") {
                        globs.push((m.clone(), abs[..abs.len() - 1].to_vec()));
                    } else if let Some(name) = alias.or_else(|| abs.last().cloned()) {
                        if name != "self" {
                            reexports.insert((m.clone(), name), abs.clone());
                        }
                    }
                }
                imports.entry(m.clone()).or_default().push((public, abs));
            }
        }
    }
    for (m, source) in globs {
        if let Some(text) = cleaned.get(&source) {
            for name in defined_items(text) {
                let mut path = source.clone();
                path.push(name.clone());
                reexports.entry((m.clone(), name)).or_insert(path);
            }
        }
    }
    let mut uses: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (m, text) in &cleaned {
        let mut targets = BTreeSet::new();
        for (_, abs) in imports.get(m).into_iter().flatten() {
            targets.insert(resolve(abs, &modules, &reexports, 0));
        }
        let debug = std::env::var("KXDP_ARCH_DEBUG").is_ok_and(|d| d == display(m));
        for path in inline_paths(text) {
            if let Some(abs) = absolute(m, &path, &modules) {
                let to = resolve(&abs, &modules, &reexports, 0);
                if debug {
                    eprintln!("{}: {path:?} -> {}", display(m), display(&to));
                }
                targets.insert(to);
            }
        }
        if debug {
            for (_, abs) in imports.get(m).into_iter().flatten() {
                eprintln!("{}: use {abs:?}", display(m));
            }
        }
        targets.remove(m);
        uses.insert(m.clone(), targets);
    }
    Ok(ModuleGraph { modules, uses })
}

/// Read `file` as module `[]` and every module file it declares.
fn collect(src: &Path, root: &Path, files: &mut BTreeMap<ModPath, String>) -> std::io::Result<()> {
    let mut stack = vec![(Vec::<String>::new(), root.to_path_buf())];
    while let Some((module, file)) = stack.pop() {
        let text = std::fs::read_to_string(&file)?;
        let cleaned = strip_test_modules(&strip_comments_and_strings(&text));
        for child in declared_modules(&cleaned) {
            let dir: PathBuf = src.join(module.join("/"));
            let candidates = [
                dir.join(format!("{child}.rs")),
                dir.join(&child).join("mod.rs"),
            ];
            if let Some(path) = candidates.iter().find(|p| p.exists()) {
                let mut path_of = module.clone();
                path_of.push(child);
                stack.push((path_of, path.clone()));
            }
        }
        files.insert(module, text);
    }
    Ok(())
}

/// Names of the public items a module defines at its top level (what a
/// glob re-export of it brings in).
fn defined_items(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("pub ") else {
            continue;
        };
        let rest = rest
            .trim_start_matches("const fn ")
            .trim_start_matches("unsafe fn ");
        for kind in [
            "struct ", "enum ", "fn ", "const ", "static ", "type ", "trait ", "union ",
        ] {
            if let Some(after) = rest.strip_prefix(kind) {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// Names of the file modules declared (`mod a;`, `pub mod a;`, `pub(crate) mod a;`).
fn declared_modules(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        let l = l
            .strip_prefix("pub(crate) ")
            .or_else(|| l.strip_prefix("pub "))
            .unwrap_or(l);
        if let Some(rest) = l.strip_prefix("mod ") {
            if let Some(name) = rest.strip_suffix(';') {
                out.push(name.trim().to_string());
            }
        }
    }
    out
}

/// The text with comments removed and string and char literals emptied
/// (their contents could look like paths).
pub fn strip_comments_and_strings(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'r' if (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                // A raw string r"…" or r#"…"#.
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if b[j] == b'"' && b[j + 1..].iter().take(hashes).all(|c| *c == b'#') {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
                let close = if b.get(i + 1) == Some(&b'\\') {
                    b[i + 2..]
                        .iter()
                        .position(|c| *c == b'\'')
                        .map(|p| i + 2 + p)
                } else if b.get(i + 2) == Some(&b'\'') {
                    Some(i + 2)
                } else {
                    None
                };
                match close {
                    Some(end) => {
                        out.push_str("' '");
                        i = end + 1;
                    }
                    None => {
                        out.push('\'');
                        i += 1;
                    }
                }
            }
            _ => {
                // Copy one UTF-8 character.
                let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&text[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    out
}

/// The text without `#[cfg(test)]` modules (`#[cfg(test)] mod name { … }`).
pub fn strip_test_modules(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = &rest[at + "#[cfg(test)]".len()..];
        // Attributes between the cfg and the item.
        let mut item = after.trim_start();
        while item.starts_with("#[") {
            match item.find(']') {
                Some(end) => item = item[end + 1..].trim_start(),
                None => break,
            }
        }
        let is_mod = ["mod ", "pub mod ", "pub(crate) mod ", "pub(super) mod "]
            .iter()
            .any(|k| item.starts_with(k));
        let open = item.find('{');
        let semi = item.find(';');
        match (is_mod, open) {
            (true, Some(open)) if semi.is_none_or(|s| s > open) => {
                let mut depth = 0usize;
                let mut end = item.len();
                for (k, c) in item[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                out.push_str(&rest[..at]);
                // `item` is a suffix of `rest`: skip through the block's end.
                let consumed = rest.len() - item.len() + end;
                rest = &rest[consumed..];
            }
            _ => {
                out.push_str(&rest[..at + "#[cfg(test)]".len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every `use` declaration: (is `pub`/`pub(crate)`, the tree after `use`).
fn use_declarations(text: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(p) = text[i..].find("use ") {
        let at = i + p;
        i = at + 4;
        let word_start = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        if !word_start {
            continue;
        }
        let Some(end) = text[at..].find(';') else {
            break;
        };
        let tree: String = text[at + 4..at + end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let before = text[..at].trim_end();
        let public = before.ends_with("pub") || before.ends_with("pub(crate)");
        out.push((public, tree));
        i = at + end;
    }
    out
}

/// A use tree as paths, each with its alias (`as x`): `a::{b, c::{d as e}}`
/// gives `a::b` and `a::c::d` (alias `e`); `a::{self}` gives `a`.
fn expand_use_tree(tree: &str) -> Vec<(Vec<String>, Option<String>)> {
    fn split_top(s: &str) -> Vec<&str> {
        let mut parts = Vec::new();
        let mut depth = 0;
        let mut start = 0;
        for (k, c) in s.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&s[start..k]);
                    start = k + 1;
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        parts.into_iter().filter(|p| !p.is_empty()).collect()
    }
    fn walk(prefix: &[String], s: &str, out: &mut Vec<(Vec<String>, Option<String>)>) {
        let s = s.trim_start_matches("::");
        if let Some(open) = s.find('{') {
            let head: Vec<String> = s[..open]
                .split("::")
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect();
            let inner = s[open + 1..].strip_suffix('}').unwrap_or(&s[open + 1..]);
            let mut p = prefix.to_vec();
            p.extend(head);
            for part in split_top(inner) {
                walk(&p, part, out);
            }
            return;
        }
        let (path, alias) = match s.split_once("as") {
            Some((p, a)) if p.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '*') => {
                (p, Some(a.to_string()))
            }
            _ => (s, None),
        };
        let mut p = prefix.to_vec();
        for seg in path.split("::").filter(|x| !x.is_empty()) {
            if seg == "self" {
                continue;
            }
            p.push(seg.to_string());
        }
        out.push((p, alias));
    }
    let mut out = Vec::new();
    walk(&[], tree, &mut out);
    out
}

/// Paths written inline: `crate::…`, `super::…`, `self::…`.
fn inline_paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut i = 0;
        while let Some(p) = text[i..].find(start) {
            let at = i + p;
            i = at + start.len();
            if at > 0
                && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_' || b[at - 1] == b':')
            {
                continue;
            }
            let mut end = at;
            while end < b.len()
                && (b[end].is_ascii_alphanumeric() || b[end] == b'_' || b[end] == b':')
            {
                end += 1;
            }
            let path: Vec<String> = text[at..end]
                .split("::")
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect();
            // `crate::{…}` in a use declaration (read there) names nothing here.
            if path.len() > 1 {
                out.push(path);
            }
        }
    }
    out
}

/// `path` as written in module `m`, made absolute (from the crate root);
/// `None` for a path into another crate or the standard library.
fn absolute(m: &ModPath, path: &[String], modules: &BTreeSet<ModPath>) -> Option<ModPath> {
    let (first, rest) = path.split_first()?;
    let mut base: ModPath = match first.as_str() {
        "crate" => Vec::new(),
        "self" => m.clone(),
        "super" => {
            let mut b = m.clone();
            b.pop();
            let mut rest = rest;
            while rest.first().map(String::as_str) == Some("super") {
                b.pop();
                rest = &rest[1..];
            }
            b.extend(rest.iter().cloned());
            return Some(b);
        }
        name => {
            // A child module of `m` named without `self::`.
            let mut child = m.clone();
            child.push(name.to_string());
            if modules.contains(&child) {
                child
            } else {
                return None;
            }
        }
    };
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The module where the item `path` names is defined: the longest module
/// prefix, following re-exports.
fn resolve(
    path: &[String],
    modules: &BTreeSet<ModPath>,
    reexports: &BTreeMap<(ModPath, String), ModPath>,
    depth: usize,
) -> ModPath {
    let mut current: ModPath = Vec::new();
    for (k, seg) in path.iter().enumerate() {
        let mut next = current.clone();
        next.push(seg.clone());
        if modules.contains(&next) {
            current = next;
            continue;
        }
        if depth < 16 {
            if let Some(target) = reexports.get(&(current.clone(), seg.clone())) {
                let mut full = target.clone();
                full.extend(path[k + 1..].iter().cloned());
                if &full[..] != path {
                    return resolve(&full, modules, reexports, depth + 1);
                }
            }
        }
        break;
    }
    current
}

/// Every cycle of `graph` (strongly connected components of more than one
/// module), each sorted, with the uses inside it.
pub fn cycles(graph: &ModuleGraph) -> Vec<Vec<(ModPath, Vec<ModPath>)>> {
    // Tarjan's algorithm, iterative over the sorted modules.
    let nodes: Vec<&ModPath> = graph.modules.iter().collect();
    let index_of: BTreeMap<&ModPath, usize> =
        nodes.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let succ: Vec<Vec<usize>> = nodes
        .iter()
        .map(|m| {
            graph
                .uses
                .get(*m)
                .into_iter()
                .flatten()
                .filter_map(|t| index_of.get(t).copied())
                .collect()
        })
        .collect();
    let n = nodes.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut out = Vec::new();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work = vec![(root, 0usize)];
        while let Some(top) = work.len().checked_sub(1) {
            let (v, child) = work[top];
            if child == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = succ[v].get(child) {
                work[top].1 += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort_unstable();
                    let members: BTreeSet<usize> = component.iter().copied().collect();
                    out.push(
                        component
                            .iter()
                            .map(|&c| {
                                let inside = succ[c]
                                    .iter()
                                    .filter(|t| members.contains(t))
                                    .map(|&t| nodes[t].clone())
                                    .collect();
                                (nodes[c].clone(), inside)
                            })
                            .collect(),
                    );
                }
            }
        }
    }
    out
}
