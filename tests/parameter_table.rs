//! The README's parameter table and `config/ptz_stream.yaml` say what the node's one
//! declaration of its parameters (`src/params/table.rs`) says: names, defaults, accepted values,
//! meanings and which are live. When this fails, run it with `UPDATE_PARAMETER_DOCS=1` to
//! rewrite both from the table, and review the diff.

use std::path::Path;

use spot_ptz_stream::params::table::render;

const BEGIN: &str = "<!-- parameters: made from src/params/table.rs -->\n";
const END: &str = "<!-- parameters end -->\n";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn update() -> bool {
    std::env::var_os("UPDATE_PARAMETER_DOCS").is_some()
}

#[test]
fn the_readme_table_is_the_declared_one() {
    let path = root().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme
        .find(BEGIN)
        .expect("README has the parameters begin marker")
        + BEGIN.len();
    let end = start
        + readme[start..]
            .find(END)
            .expect("README has the parameters end marker");
    let table = render::readme_table();
    if update() {
        let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        readme[start..end] == table,
        "README.md's parameter table differs from src/params/table.rs; run \
         `UPDATE_PARAMETER_DOCS=1 cargo test --test parameter_table` and review the diff.\n\
         expected:\n{table}"
    );
}

#[test]
fn the_yaml_file_is_the_declared_one() {
    let path = root().join("config/ptz_stream.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let expected = render::yaml_file();
    if update() {
        std::fs::write(&path, expected).unwrap();
        return;
    }
    assert!(
        yaml == expected,
        "config/ptz_stream.yaml differs from src/params/table.rs; run \
         `UPDATE_PARAMETER_DOCS=1 cargo test --test parameter_table` and review the diff.\n\
         expected:\n{expected}"
    );
}
