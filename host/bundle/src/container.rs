//! The container: a ustar archive of regular files, written
//! deterministically (fixed times, owners and modes, paths sorted after the
//! manifest) and read strictly (no links, devices, absolute or `..` paths,
//! or duplicate names: a bundle never has them, so one that does was not
//! made by `sluice bundle`).

use crate::BundleError;
use std::collections::BTreeMap;
use std::io::Read;

/// Writes `entries` (path, bytes), in order, as a tar.
pub(crate) fn write(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    for (path, bytes) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        builder
            .append_data(&mut header, path, *bytes)
            .expect("writing a tar to memory cannot fail");
    }
    builder
        .into_inner()
        .expect("writing a tar to memory cannot fail")
}

/// Reads every entry of a tar into memory, by path.
pub(crate) fn read(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    let bad = |why: String| BundleError::Container(why);
    let mut archive = tar::Archive::new(bytes);
    let mut files = BTreeMap::new();
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("it is not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("it is not a tar archive: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(format!("an entry's name is unreadable: {e}")))?
            .to_string_lossy()
            .into_owned();
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(bad(format!(
                "`{path}` is not a regular file ({:?})",
                entry.header().entry_type()
            )));
        }
        if path.starts_with('/') || path.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(bad(format!("`{path}` is not a plain relative path")));
        }
        let size = entry.size();
        if size > bytes.len() as u64 {
            return Err(bad(format!(
                "`{path}` claims {size} bytes, more than the file"
            )));
        }
        let mut data = Vec::with_capacity(size as usize);
        entry
            .read_to_end(&mut data)
            .map_err(|e| bad(format!("`{path}` is truncated: {e}")))?;
        if files.insert(path.clone(), data).is_some() {
            return Err(bad(format!("`{path}` appears twice")));
        }
    }
    if files.is_empty() {
        return Err(bad("it is empty".into()));
    }
    Ok(files)
}
