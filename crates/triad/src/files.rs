//! Files that hold secrets: a party's share checkpoint, the owner's opened weights.
//!
//! [`write_private`] writes such a file so that no other user can read it, not even for a
//! moment, and no other user can make it write somewhere else:
//!
//! 1. a temporary name in the target's own directory, `.<name>.<16 hex digits>.tmp`, the
//!    digits from the operating system's random source, so the name cannot be guessed
//!    (a predictable name lets another user of a shared directory plant a symbolic link
//!    or a file of their own there first);
//! 2. created with `O_CREAT | O_EXCL` (Rust's `create_new`), so an existing file or link at
//!    that name is never followed or reused, and with mode 0600 given at creation, so the
//!    file is never readable by others;
//! 3. the bytes written and flushed to the disk (`fsync`);
//! 4. renamed over the target: a reader sees the old file or the new one, never half a
//!    file, and an interrupted write leaves the old checkpoint in place
//!    (`--resume ck --checkpoint ck`). The renamed file keeps mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{write_err, Result};

/// A fresh temporary name beside `path`: `.<file name>.<16 random hex digits>.tmp`.
pub fn temp_path(path: &Path) -> Result<PathBuf> {
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).map_err(|e| write_err(path, format!("no randomness for a temporary name: {e}")))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = format!(".{name}.{:016x}.tmp", u64::from_le_bytes(r));
    Ok(path.with_file_name(tmp))
}

/// Writes `bytes` to `path` as the module docs describe: owner-only (0600 on Unix), through
/// an unpredictable temporary name, flushed, then renamed over `path`. Creates the parent
/// directory if needed.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    }
    let tmp = temp_path(path)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(|e| write_err(&tmp, e))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    drop(f);
    let done = written.and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_err(path, e));
    }
    // The rename is durable once the directory itself is flushed.
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Keeps the file `current` also as `previous` (replacing it): a hard link made under an
/// unpredictable temporary name and renamed, or, where the file system has no hard links,
/// a private copy. `current` is not touched.
pub fn keep_previous(current: &Path, previous: &Path) -> Result<()> {
    let tmp = temp_path(previous)?;
    if std::fs::hard_link(current, &tmp).is_err() {
        let bytes = std::fs::read(current).map_err(|e| crate::error::read_err(current, e))?;
        return write_private(previous, &bytes);
    }
    std::fs::rename(&tmp, previous).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_err(previous, e)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("triad-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn temporary_names_are_fresh_and_beside_the_target() {
        let target = Path::new("/some/dir/party-1.safetensors");
        let (a, b) = (temp_path(target).unwrap(), temp_path(target).unwrap());
        assert_ne!(a, b, "two writes must not share a temporary name");
        assert_eq!(a.parent(), target.parent());
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".party-1.safetensors.") && name.ends_with(".tmp"), "{name}");
        assert_eq!(name.len(), ".party-1.safetensors.".len() + 16 + ".tmp".len(), "{name}");
    }

    #[test]
    fn a_private_file_is_owner_only_and_leaves_no_temporary_file() {
        let d = dir("private");
        let target = d.join("w.safetensors");
        // A file planted at the name the old writer used is neither followed nor used.
        let planted = d.join("w.safetensors.partial");
        std::fs::write(&planted, b"planted").unwrap();
        write_private(&target, b"first").unwrap();
        write_private(&target, b"second").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"second");
        assert_eq!(std::fs::read(&planted).unwrap(), b"planted");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&target).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let left: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "temporary files left behind: {left:?}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
