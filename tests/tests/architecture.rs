//! The architecture's rules (issue #17), checked on the sources on every
//! CI run: no module cycle in any crate of the workspace, and no product
//! library depending on the netns testbed (see `kxdp_tests::architecture`
//! for what counts as a use).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use kxdp_tests::architecture::{cycles, display, module_graph};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace's member folders, read from its Cargo.toml.
fn members() -> Vec<String> {
    let toml = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let start = toml.find("members = [").expect("a members list");
    let end = start + toml[start..].find(']').unwrap();
    toml[start + "members = [".len()..end]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// Every crate root of member `dir`: `src/lib.rs`, `src/main.rs`, and
/// `src/bin/*.rs`.
fn crate_roots(dir: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["src/lib.rs", "src/main.rs"]
        .iter()
        .map(|r| dir.join(r))
        .filter(|p| p.exists())
        .collect();
    if let Ok(bins) = std::fs::read_dir(dir.join("src/bin")) {
        roots.extend(bins.filter_map(Result::ok).map(|e| e.path()));
    }
    roots
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut found = Vec::new();
    let mut checked = 0;
    for member in members() {
        for root in crate_roots(&workspace().join(&member)) {
            let graph = module_graph(&root).unwrap();
            checked += graph.modules.len();
            for cycle in cycles(&graph) {
                let mut text = format!("{member} ({}):", root.display());
                for (m, uses) in cycle {
                    let uses: Vec<String> = uses.iter().map(display).collect();
                    text.push_str(&format!("\n    {} uses {}", display(&m), uses.join(", ")));
                }
                found.push(text);
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} modules found: is the workspace read?"
    );
    assert!(
        found.is_empty(),
        "module cycles (a module uses one that uses it back):\n{}",
        found.join("\n")
    );
}

/// The `[dependencies]` table of a member's Cargo.toml (dev-dependencies
/// excluded: a library's tests may use the testbed).
fn normal_dependencies(member: &str) -> Vec<String> {
    let toml = std::fs::read_to_string(workspace().join(member).join("Cargo.toml")).unwrap();
    let mut in_deps = false;
    let mut deps = Vec::new();
    for line in toml.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps {
            if let Some((name, _)) = line.split_once(['=', '.']) {
                let name = name.trim();
                if !name.is_empty() && !name.starts_with('#') {
                    deps.push(name.to_string());
                }
            }
        }
    }
    deps
}

#[test]
fn no_product_library_depends_on_the_testbed() {
    // The product: what runs on a node. The CLI (demo, bench entry), the
    // benchmarks and the tests may use the testbed.
    let product = [
        "config",
        "dataplane",
        "vnf-chains",
        "control/runtime",
        "control",
        "control/cni",
    ];
    for member in product {
        assert!(
            members().iter().any(|m| m == member),
            "{member} is not a workspace member any more: update this list"
        );
        let deps = normal_dependencies(member);
        assert!(
            deps.iter().any(|d| d.starts_with("kxdp-") || d == "serde"),
            "{member}: no dependencies read from its Cargo.toml"
        );
        assert!(
            !deps
                .iter()
                .any(|d| d == "kxdp-testbed" || d == "kxdp-tests"),
            "{member} depends on the testbed: {deps:?}"
        );
    }
}

#[test]
fn libraries_do_not_use_anyhow() {
    // STYLE.md habit 5: a library returns its own `thiserror` enums, whose
    // variants a caller can match and whose sources stay attached; `anyhow`
    // is for the binary (kxdp-cli) and for the testbed, benchmarks and tests.
    let libraries = [
        "config",
        "dataplane",
        "dataplane/sys",
        "vnf-chains",
        "control/runtime",
        "control",
        "control/cni",
    ];
    for member in libraries {
        assert!(
            members().iter().any(|m| m == member),
            "{member} is not a workspace member any more: update this list"
        );
        let deps = normal_dependencies(member);
        assert!(
            !deps.is_empty(),
            "{member}: no dependencies read from its Cargo.toml"
        );
        assert!(
            !deps.iter().any(|d| d == "anyhow"),
            "{member} depends on anyhow: give it a thiserror enum per module instead"
        );
    }
}

#[test]
fn the_node_runtime_serves_nothing_and_knows_no_control_plane() {
    // kxdp-node (control/runtime) runs the dataplane; serving it (gRPC,
    // HTTP, Kubernetes) is kxdp-control's, which depends on it, not back.
    let deps = normal_dependencies("control/runtime");
    assert!(
        deps.iter().any(|d| d == "kxdp-dataplane"),
        "control/runtime: no dependencies read: {deps:?}"
    );
    for forbidden in [
        "kxdp-control",
        "kxdp-cli",
        "tonic",
        "prost",
        "axum",
        "kube",
        "hyper-util",
        "prometheus-client",
        "anyhow",
    ] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "control/runtime depends on {forbidden}: {deps:?}"
        );
    }
}

#[test]
fn the_checker_finds_a_cycle_and_resolves_reexports() {
    let dir = std::env::temp_dir().join(format!("kxdp-arch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src/a")).unwrap();
    let write = |path: &str, text: &str| std::fs::write(dir.join(path), text).unwrap();
    // a ↔ b through `use` and an inline path; c is reached through the
    // root's re-export (not a use of the root); tests are left out.
    write(
        "src/lib.rs",
        "mod a;\nmod b;\nmod c;\npub use c::Thing;\n#[cfg(test)]\nmod tests { use crate::a::X; }\n",
    );
    write(
        "src/a/mod.rs",
        "use crate::b::Y; // use crate::c::Z;\npub struct X;\nmod inner;\n",
    );
    write(
        "src/a/inner.rs",
        "pub fn f() { let _ = \"crate::b::Y\"; }\n",
    );
    write(
        "src/b.rs",
        "pub struct Y;\nfn g() -> crate::a::X { crate::a::X }\n",
    );
    write(
        "src/c.rs",
        "pub struct Thing;\nfn h() { let _ = crate::Thing; }\n",
    );
    let graph = module_graph(&dir.join("src/lib.rs")).unwrap();
    let names: Vec<String> = graph.modules.iter().map(display).collect();
    assert_eq!(
        names,
        [
            "crate",
            "crate::a",
            "crate::a::inner",
            "crate::b",
            "crate::c"
        ]
    );
    let found = cycles(&graph);
    assert_eq!(found.len(), 1, "{found:?}");
    let members: Vec<String> = found[0].iter().map(|(m, _)| display(m)).collect();
    assert_eq!(members, ["crate::a", "crate::b"]);
    let uses = |m: &[&str]| -> Vec<String> {
        let key: Vec<String> = m.iter().map(|s| s.to_string()).collect();
        graph.uses[&key].iter().map(display).collect()
    };
    // The root re-exports c (a use of c); c names `crate::Thing`, which
    // resolves to c itself: no cycle through the root.
    assert_eq!(uses(&[]), ["crate::c"]);
    assert!(uses(&["c"]).is_empty());
    // Comments and strings are not read.
    assert!(uses(&["a", "inner"]).is_empty());
    assert_eq!(uses(&["a"]), ["crate::b"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every `.rs` file under `dir` (no `target/`).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn unsafe_code_lives_in_kxdp_sys_only() {
    // The workspace denies `unsafe_code`; only `dataplane/sys` may allow
    // it, and the two crates of the packet path forbid it outright.
    let mut files = Vec::new();
    for member in members() {
        let dir = workspace().join(&member);
        // A member nested in another (dataplane/sys in dataplane) is read
        // as its own member only.
        let mut mine = Vec::new();
        rust_files(&dir.join("src"), &mut mine);
        files.extend(mine.into_iter().map(|f| (member.clone(), f)));
    }
    assert!(files.len() > 100, "only {} files read", files.len());
    let allowed: Vec<String> = files
        .iter()
        .filter(|(member, _)| member != "dataplane/sys")
        .filter(|(_, f)| {
            let text = std::fs::read_to_string(f).unwrap();
            text.contains("allow(unsafe_code)")
        })
        .map(|(_, f)| f.display().to_string())
        .collect();
    assert!(
        allowed.is_empty(),
        "`unsafe` allowed outside dataplane/sys: {allowed:?}"
    );
    for root in ["dataplane/src/lib.rs", "vnf-chains/src/lib.rs"] {
        let text = std::fs::read_to_string(workspace().join(root)).unwrap();
        assert!(
            text.contains("#![forbid(unsafe_code)]"),
            "{root} does not forbid unsafe code"
        );
    }
}
