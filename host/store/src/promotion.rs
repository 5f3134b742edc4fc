//! Each model's promotion policy: the environments its versions move
//! through, in order, and what a move into each requires. Kept in the
//! metadata database, not only in a spec, so that `sluice models promote`
//! on any machine of a team applies the same gates; `sluice-delivery`
//! defines what the JSON holds and checks the gates.

use crate::db::{Metadata, MetadataError, vals};
use serde::Serialize;

/// A stored promotion policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredPolicy {
    /// The model's name.
    pub name: String,
    /// The policy, as JSON.
    pub policy: String,
    /// When it was last set (RFC 3339).
    pub updated_at: String,
    /// Who set it.
    pub who: String,
}

impl Metadata {
    /// The promotion policy of model `name`, if one is set.
    pub fn promotion_policy(&self, name: &str) -> Result<Option<StoredPolicy>, MetadataError> {
        self.read(|c| {
            c.query_opt(
                "SELECT name, policy, updated_at, who FROM promotion_policies WHERE name = ?1",
                vals![name],
            )?
            .map(|r| {
                Ok(StoredPolicy {
                    name: r.get(0)?,
                    policy: r.get(1)?,
                    updated_at: r.get(2)?,
                    who: r.get(3)?,
                })
            })
            .transpose()
        })
    }

    /// Sets the promotion policy of model `name` (the last writer wins).
    pub fn set_promotion_policy(
        &self,
        name: &str,
        policy: &str,
        who: &str,
        now: &str,
    ) -> Result<(), MetadataError> {
        self.write(|c| {
            c.execute(
                "INSERT INTO promotion_policies (name, policy, updated_at, who) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET policy = excluded.policy,
                     updated_at = excluded.updated_at, who = excluded.who",
                vals![name, policy, now, who],
            )?;
            Ok(())
        })
    }

    /// Removes the promotion policy of model `name`; whether it had one.
    pub fn clear_promotion_policy(&self, name: &str) -> Result<bool, MetadataError> {
        self.write(|c| {
            Ok(c.execute(
                "DELETE FROM promotion_policies WHERE name = ?1",
                vals![name],
            )? > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::Metadata;

    #[test]
    fn a_policy_is_set_replaced_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let m = Metadata::open(dir.path().join("m.sqlite")).unwrap();
        assert_eq!(m.promotion_policy("cancer").unwrap(), None);
        m.set_promotion_policy("cancer", "{\"a\":1}", "ann", "t1")
            .unwrap();
        m.set_promotion_policy("cancer", "{\"a\":2}", "bob", "t2")
            .unwrap();
        let p = m.promotion_policy("cancer").unwrap().unwrap();
        assert_eq!(
            (p.policy.as_str(), p.who.as_str(), p.updated_at.as_str()),
            ("{\"a\":2}", "bob", "t2")
        );
        assert!(m.clear_promotion_policy("cancer").unwrap());
        assert!(!m.clear_promotion_policy("cancer").unwrap());
        assert_eq!(m.promotion_policy("cancer").unwrap(), None);
    }
}
