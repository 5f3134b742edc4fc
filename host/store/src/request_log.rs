//! Request logs: the chunks of served requests a model server writes for
//! monitoring. Each chunk is a Parquet object in the object store (inputs,
//! outputs, request ids, times); its row here says which model version it
//! holds and when, so a monitor finds a model's traffic without listing
//! objects.

use crate::Digest;
use crate::db::{Metadata, MetadataError, vals};
use serde::Serialize;

/// One chunk of logged requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestLogChunk {
    /// The model's registered name.
    pub name: String,
    /// The version that served the requests.
    pub version: i64,
    /// The Parquet object holding the rows.
    pub object: Digest,
    /// How many requests' rows it holds.
    pub rows: u64,
    /// When the first of them was served (RFC 3339).
    pub first_at: String,
    /// When the last of them was served (RFC 3339).
    pub last_at: String,
    /// Which server wrote it (`host:port`).
    pub server: String,
    /// Whose traffic the requests were: what the server's route serves as
    /// its primary (`NAME@ALIAS`), whichever role answered them; a
    /// canary's chunks name the alias whose requests it took a share of.
    /// `""` for chunks stored before sluice recorded it and for logs
    /// ingested from a device.
    pub route: String,
}

impl RequestLogChunk {
    /// Whether the chunk holds requests of `route`'s traffic; a chunk
    /// whose route is not known (`""`) counts for every route.
    pub fn in_route(&self, route: &str) -> bool {
        self.route.is_empty() || self.route == route
    }
}

impl Metadata {
    /// Records a chunk whose object is already in the object store.
    pub fn record_request_log(&self, chunk: &RequestLogChunk) -> Result<(), MetadataError> {
        self.write(|c| {
            c.execute(
                "INSERT INTO request_logs (name, version, object, rows, first_at, last_at, server, route)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                vals![
                    chunk.name,
                    chunk.version,
                    chunk.object.to_string(),
                    chunk.rows as i64,
                    chunk.first_at,
                    chunk.last_at,
                    chunk.server,
                    chunk.route
                ],
            )?;
            Ok(())
        })
    }

    /// The chunks logged for model `name` whose last request is at or after
    /// `since` (RFC 3339; `None` for all), oldest first.
    pub fn request_logs(
        &self,
        name: &str,
        since: Option<&str>,
    ) -> Result<Vec<RequestLogChunk>, MetadataError> {
        self.read(|c| {
            c.query(
                "SELECT name, version, object, rows, first_at, last_at, server, route FROM request_logs
                 WHERE name = ?1 AND last_at >= ?2 ORDER BY first_at, id",
                vals![name, since.unwrap_or("")],
            )?
            .iter()
            .map(|r| {
                Ok(RequestLogChunk {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    object: crate::db::parse_digest(r.get(2)?),
                    rows: r.get::<i64>(3)? as u64,
                    first_at: r.get(4)?,
                    last_at: r.get(5)?,
                    server: r.get(6)?,
                    route: r.get(7)?,
                })
            })
            .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_found_by_model_and_time() {
        for (_dir, m) in crate::db::tests::backends() {
            let chunk = |name: &str, version, at: &str| RequestLogChunk {
                name: name.into(),
                version,
                object: Digest::of(format!("{name}{version}{at}").as_bytes()),
                rows: 3,
                first_at: at.into(),
                last_at: at.into(),
                server: "127.0.0.1:8080".into(),
                route: format!("{name}@production"),
            };
            m.record_request_log(&chunk("cancer", 1, "2026-01-01T00:00:00Z"))
                .unwrap();
            m.record_request_log(&chunk("cancer", 2, "2026-01-02T00:00:00Z"))
                .unwrap();
            m.record_request_log(&chunk("other", 1, "2026-01-02T00:00:00Z"))
                .unwrap();
            let all = m.request_logs("cancer", None).unwrap();
            assert_eq!(
                all.iter().map(|c| c.version).collect::<Vec<_>>(),
                vec![1, 2]
            );
            let recent = m
                .request_logs("cancer", Some("2026-01-01T12:00:00Z"))
                .unwrap();
            assert_eq!(recent, vec![chunk("cancer", 2, "2026-01-02T00:00:00Z")]);
            assert!(
                m.referenced_artifacts().unwrap().contains(&all[0].object),
                "gc keeps logged chunks"
            );
            // The route round-trips, and a chunk of no known route (a
            // device's, or one stored before routes) is in every route.
            assert_eq!(all[0].route, "cancer@production");
            assert!(all[0].in_route("cancer@production") && !all[0].in_route("cancer@staging"));
            let device = RequestLogChunk {
                route: String::new(),
                ..chunk("cancer", 1, "2026-01-03T00:00:00Z")
            };
            assert!(device.in_route("cancer@staging"));
        }
    }
}
