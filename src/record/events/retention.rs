//! Keeps the event files of a directory under a total size: the oldest go first.

use std::path::{Path, PathBuf};

/// Deletes the oldest `<prefix>_*.mcap` files of `dir` (by name, which is the start time)
/// until those files, `open` included (as it is on disk now), total at most `max_total_bytes`.
/// `open` is never deleted. Answers how many files were deleted; a file that cannot be deleted
/// is skipped (WARN) and counts on.
pub(crate) fn enforce(dir: &Path, prefix: &str, max_total_bytes: u64, open: Option<&Path>) -> u64 {
    let mut files = match event_files(dir, prefix) {
        Ok(files) => files,
        Err(e) => {
            tracing::debug!(dir = %dir.display(), "cannot list the event files: {e}");
            return 0;
        }
    };
    files.sort();
    let mut total_bytes: u64 = files.iter().map(|(_, size)| size).sum();
    let mut deleted = 0;
    for (path, size_bytes) in files {
        if total_bytes <= max_total_bytes {
            break;
        }
        if open == Some(path.as_path()) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                deleted += 1;
                total_bytes -= size_bytes;
                tracing::info!(
                    file = %path.display(),
                    size_bytes,
                    max_total_bytes,
                    "deleted the oldest event recording to stay under the size limit"
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => total_bytes -= size_bytes,
            Err(e) => tracing::warn!(
                file = %path.display(),
                "cannot delete an old event recording to stay under the size limit: {e}; \
                 check the directory's permissions"
            ),
        }
    }
    deleted
}

/// The `<prefix>_*.mcap` regular files of `dir` with their sizes.
fn event_files(dir: &Path, prefix: &str) -> std::io::Result<Vec<(PathBuf, u64)>> {
    let start = format!("{prefix}_");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(&start) || !name.ends_with(".mcap") {
            continue;
        }
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if metadata.is_file() {
            files.push((entry.path(), metadata.len()));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn deletes_oldest_first_never_the_open_file_and_ignores_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for (name, size) in [
            ("ev_20250101_000003.000.mcap", 100),
            ("ev_20250101_000001.000.mcap", 100),
            ("ev_20250101_000002.000.mcap", 100),
            ("ev_20250101_000004.000.mcap", 100),
            ("other_20200101_000000.000.mcap", 1000),
            ("ev_notes.txt", 1000),
        ] {
            std::fs::write(dir.join(name), vec![0u8; size]).unwrap();
        }
        // 400 bytes of event files, at most 250: the two oldest go.
        assert_eq!(enforce(dir, "ev", 250, None), 2);
        assert_eq!(
            names(dir),
            [
                "ev_20250101_000003.000.mcap",
                "ev_20250101_000004.000.mcap",
                "ev_notes.txt",
                "other_20200101_000000.000.mcap",
            ]
        );
        assert_eq!(enforce(dir, "ev", 250, None), 0);
        // The open (oldest-named) file stays even when it alone is over the limit.
        let open = dir.join("ev_20250101_000003.000.mcap");
        std::fs::write(&open, vec![0u8; 300]).unwrap();
        assert_eq!(enforce(dir, "ev", 250, Some(&open)), 1);
        assert_eq!(
            names(dir),
            [
                "ev_20250101_000003.000.mcap",
                "ev_notes.txt",
                "other_20200101_000000.000.mcap",
            ]
        );
        assert_eq!(enforce(dir, "ev", 250, Some(&open)), 0);
        assert_eq!(enforce(&dir.join("missing"), "ev", 0, None), 0);
    }
}
