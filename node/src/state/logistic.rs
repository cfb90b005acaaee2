//! The logistic classifier's replicated weights: taught at apply, in log order, inside the
//! apply transaction (`teach`: the lesson, then one earlier lesson of each class from
//! `bayes_learned`, round robin by fingerprint from the cursors in `logistic_cursor`),
//! reading the weights as last committed (`BatchWeights`), and loaded into the in-memory
//! `Model` from `logistic_weights`.

use std::collections::HashMap;
use std::sync::RwLockReadGuard;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use peage_mail::bayes::Class;
use peage_mail::features::{Features, BUCKETS};
use peage_mail::logistic::{self, Lessons, Model, Overlay};

use super::knowledge::IndexChange;

/// The buckets of a proposed feature list that the model has, sorted and distinct.
pub fn valid_features(features: &[u32]) -> Features {
    let mut valid: Vec<u32> = features.iter().copied().filter(|b| *b < BUCKETS).collect();
    valid.sort_unstable();
    valid.dedup();
    Features(valid)
}

pub fn features_blob(f: &Features) -> Vec<u8> {
    f.0.iter().flat_map(|b| b.to_le_bytes()).collect()
}

fn features_of_blob(blob: &[u8]) -> Features {
    Features(
        blob.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// The weights as this apply batch sees them: the model as last committed (the in-memory
/// index follows each commit before the next batch starts, and is loaded from the database
/// at open and restore, so it holds exactly what the database does) under the changes of
/// the batch's earlier commands. Reading memory rather than one row per feature and step is
/// what keeps a learning cheap at apply.
pub struct BatchWeights<'a> {
    committed: RwLockReadGuard<'a, Model>,
    changed: HashMap<u32, f32>,
}

impl<'a> BatchWeights<'a> {
    pub fn new(committed: RwLockReadGuard<'a, Model>) -> BatchWeights<'a> {
        BatchWeights {
            committed,
            changed: HashMap::new(),
        }
    }
}

/// Earlier lessons, from `bayes_learned`, after each class's cursor.
struct StoredLessons<'a> {
    tx: &'a Transaction<'a>,
    error: Option<rusqlite::Error>,
}

impl StoredLessons<'_> {
    fn next(&self, class: Class) -> rusqlite::Result<Option<Features>> {
        let cursor: String = self
            .tx
            .query_row(
                "SELECT fingerprint FROM logistic_cursor WHERE class = ?1",
                [class.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or_default();
        let after = |cursor: &str| -> rusqlite::Result<Option<(String, Vec<u8>)>> {
            self.tx
                .prepare_cached(
                    "SELECT fingerprint, features FROM bayes_learned
                     WHERE class = ?1 AND fingerprint > ?2 ORDER BY fingerprint LIMIT 1",
                )?
                .query_row([class.as_str(), cursor], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        };
        let Some((fingerprint, blob)) = (match after(&cursor)? {
            Some(next) => Some(next),
            None => after("")?,
        }) else {
            return Ok(None);
        };
        self.tx.execute(
            "INSERT INTO logistic_cursor (class, fingerprint) VALUES (?1, ?2)
             ON CONFLICT (class) DO UPDATE SET fingerprint = excluded.fingerprint",
            [class.as_str(), &fingerprint],
        )?;
        Ok(Some(features_of_blob(&blob)))
    }
}

impl Lessons for StoredLessons<'_> {
    fn next_lesson(&mut self, spam: bool) -> Option<Features> {
        let class = if spam { Class::Spam } else { Class::Ham };
        match self.next(class) {
            Ok(next) => next,
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }
}

/// Teaches the logistic classifier one learned message (already in `bayes_learned`) and
/// rehearses earlier ones; the weights it changed are kept for the batch's next commands and
/// written once for the whole batch (`flush`).
pub fn teach(
    tx: &Transaction<'_>,
    weights: &mut BatchWeights<'_>,
    features: &Features,
    class: Class,
) -> rusqlite::Result<()> {
    if features.0.is_empty() {
        return Ok(());
    }
    let changed = std::mem::take(&mut weights.changed);
    let mut overlay = Overlay::new(&weights.committed, changed);
    let mut lessons = StoredLessons { tx, error: None };
    logistic::teach(&mut overlay, &mut lessons, features, class == Class::Spam);
    weights.changed = overlay.into_changes();
    match lessons.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Writes the weights the batch changed, once each, and hands them to the in-memory model
/// for after the commit. Many learnings in one batch share most of their buckets (headers,
/// common words): one write per bucket per batch, not per lesson.
pub fn flush(
    tx: &Transaction<'_>,
    weights: BatchWeights<'_>,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<()> {
    if weights.changed.is_empty() {
        return Ok(());
    }
    let mut changed: Vec<(u32, f32)> = weights.changed.into_iter().collect();
    changed.sort_unstable_by_key(|(bucket, _)| *bucket);
    let mut upsert = tx.prepare_cached(
        "INSERT INTO logistic_weights (bucket, weight) VALUES (?1, ?2)
         ON CONFLICT (bucket) DO UPDATE SET weight = excluded.weight",
    )?;
    for (bucket, weight) in &changed {
        upsert.execute(params![bucket, f64::from(*weight)])?;
    }
    changes.push(IndexChange::Logistic(changed));
    Ok(())
}

/// The weights as the database holds them.
pub fn load_weights(conn: &Connection) -> rusqlite::Result<Model> {
    let mut model = Model::default();
    let mut stmt = conn.prepare("SELECT bucket, weight FROM logistic_weights")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, f64>(1)?)))?;
    for row in rows {
        let (bucket, weight) = row?;
        model.set(bucket, weight as f32);
    }
    Ok(model)
}

/// The weights (their `f32` bits: equal bits or the digests differ) and the rehearsal
/// cursors, in a canonical order, for the state digest.
pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT bucket, weight FROM logistic_weights ORDER BY bucket")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let weight = r.get::<_, f64>(1)? as f32;
        out(format!("lw:{}:{:08x}", r.get::<_, i64>(0)?, weight.to_bits()).as_bytes());
    }
    let mut stmt = conn.prepare("SELECT class, fingerprint FROM logistic_cursor ORDER BY class")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        out(format!("lc:{}:{}", r.get::<_, String>(0)?, r.get::<_, String>(1)?).as_bytes());
    }
    Ok(())
}
