//! The layers README.md's layout section lists hold in the code: a module imports only
//! from the layers above its own (or the same layer's other modules never), so the tree
//! has no cycles and `config_file` is imported by `server` and `main` alone.

use std::collections::BTreeMap;
use std::path::Path;

/// Layer number of each top-level module, from README's numbered list.
fn layers() -> BTreeMap<String, usize> {
    let readme = std::fs::read_to_string("README.md").expect("README.md");
    let section = readme.split("The layers, each importing").nth(1).expect("the layers list in README.md");
    let mut layers = BTreeMap::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let Some((n, rest)) = line.split_once(". ") else { continue };
        let Ok(n) = n.trim().parse::<usize>() else { continue };
        for name in rest.split('`').skip(1).step_by(2) {
            layers.insert(name.to_string(), n);
        }
    }
    assert!(layers.len() > 10, "README's layer list not found: {layers:?}");
    layers
}

/// The top-level modules a file names as `crate::NAME`, outside its unit tests.
fn imports(src: &str) -> Vec<String> {
    let code = src.split("#[cfg(test)]").next().unwrap_or(src);
    let mut found = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(list) => list.split('}').next().unwrap_or("").split(',').collect(),
            None => vec![rest],
        };
        for n in names {
            let n: String = n.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !n.is_empty() {
                found.push(n);
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_imports_only_from_layers_above_it() {
    let layers = layers();
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let rel = file.strip_prefix("src").expect("under src");
        let top = rel.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or("");
        let module = top.trim_end_matches(".rs");
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(&own) = layers.get(module) else {
            wrong.push(format!("{}: module `{module}` is in no layer of README.md", file.display()));
            continue;
        };
        let src = std::fs::read_to_string(&file).expect("read");
        for used in imports(&src) {
            if used == module {
                continue;
            }
            match layers.get(&used) {
                Some(&l) if l < own => {}
                Some(&l) => wrong.push(format!(
                    "{}: `{module}` (layer {own}) imports `{used}` (layer {l})",
                    file.display()
                )),
                None => wrong.push(format!("{}: imports `{used}`, in no layer of README.md", file.display())),
            }
        }
    }
    assert!(wrong.is_empty(), "the layering in README.md does not hold:\n{}", wrong.join("\n"));
}
