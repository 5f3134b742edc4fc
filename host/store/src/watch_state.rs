//! What `sluice watch` has seen and decided, per pipeline: the digests of
//! its data inputs, when its schedule and monitors last looked, and the
//! trigger it is acting on. Kept in the metadata database so that a
//! restarted watcher neither loses a trigger nor acts on one twice.

use crate::db::{Metadata, MetadataError, vals};
use crate::metadata::RunRecord;
use std::collections::BTreeMap;

impl Metadata {
    /// Every key recorded for `pipeline`.
    pub fn watch_state(&self, pipeline: &str) -> Result<BTreeMap<String, String>, MetadataError> {
        self.read(|c| {
            c.query(
                "SELECT key, value FROM watch_state WHERE pipeline = ?1 ORDER BY key",
                vals![pipeline],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect()
        })
    }

    /// Sets (`Some`) or removes (`None`) keys of `pipeline`, all in one
    /// transaction.
    pub fn update_watch_state(
        &self,
        pipeline: &str,
        changes: &[(&str, Option<&str>)],
        now: &str,
    ) -> Result<(), MetadataError> {
        self.write(|c| {
            for (key, value) in changes {
                match value {
                    Some(v) => c.execute(
                        "INSERT INTO watch_state (pipeline, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (pipeline, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                        vals![pipeline, key, v, now],
                    )?,
                    None => c.execute(
                        "DELETE FROM watch_state WHERE pipeline = ?1 AND key = ?2",
                        vals![pipeline, key],
                    )?,
                };
            }
            Ok(())
        })
    }

    /// The latest run of `pipeline` started with `trigger`, if any.
    pub fn run_with_trigger(
        &self,
        pipeline: &str,
        trigger: &str,
    ) -> Result<Option<RunRecord>, MetadataError> {
        let id: Option<String> = self.read(|c| {
            Ok(c.column::<String>(
                "SELECT id FROM runs WHERE pipeline = ?1 AND trigger = ?2 ORDER BY started_at DESC LIMIT 1",
                vals![pipeline, trigger],
            )?
            .into_iter()
            .next())
        })?;
        id.map(|id| self.run(&id)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use crate::Digest;

    #[test]
    fn state_changes_are_atomic_and_runs_are_found_by_trigger() {
        for (_dir, m) in crate::db::tests::backends() {
            m.update_watch_state(
                "p",
                &[("data:raw", Some("sha256:1")), ("pending", Some("{}"))],
                "t0",
            )
            .unwrap();
            m.update_watch_state(
                "p",
                &[("pending", None), ("data:raw", Some("sha256:2"))],
                "t1",
            )
            .unwrap();
            let state = m.watch_state("p").unwrap();
            assert_eq!(state.len(), 1);
            assert_eq!(state["data:raw"], "sha256:2");
            assert!(m.watch_state("other").unwrap().is_empty());
            m.start_run(
                "r1",
                "p",
                "p.toml",
                &Digest::of(b"s"),
                "new-data:abc",
                "t2",
                None,
            )
            .unwrap();
            assert_eq!(
                m.run_with_trigger("p", "new-data:abc").unwrap().unwrap().id,
                "r1"
            );
            assert!(m.run_with_trigger("p", "drift:abc").unwrap().is_none());
        }
    }
}
