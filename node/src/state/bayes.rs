//! The Bayes classifier's replicated counts: applying `BayesLearn` (idempotent per
//! fingerprint, moving a message between classes; the logistic classifier is taught the same
//! lesson, `super::logistic`), and loading the in-memory `TokenTable` from them.

use peage_mail::bayes::{Class, TokenTable};
use peage_proto::v1::BayesLearn;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::knowledge::IndexChange;
use super::logistic::{self, BatchWeights};
use crate::types::{LearnChange, Outcome};

fn tokens_blob(tokens: &[u64]) -> Vec<u8> {
    tokens.iter().flat_map(|t| t.to_le_bytes()).collect()
}

fn tokens_of_blob(blob: &[u8]) -> Vec<u64> {
    blob.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect()
}

/// Adds `delta` (±1) to each token's count of `class`; drops rows that reach zero.
fn count(tx: &Transaction<'_>, tokens: &[u64], class: Class, delta: i64) -> rusqlite::Result<()> {
    let (spam, ham) = match class {
        Class::Spam => (delta, 0),
        Class::Ham => (0, delta),
    };
    let mut upsert = tx.prepare_cached(
        "INSERT INTO bayes_tokens (token, spam, ham) VALUES (?1, MAX(?2, 0), MAX(?3, 0))
         ON CONFLICT (token) DO UPDATE SET spam = MAX(spam + ?2, 0), ham = MAX(ham + ?3, 0)",
    )?;
    for t in tokens {
        // SQLite integers are signed: the token's bits are stored as an i64.
        upsert.execute(params![*t as i64, spam, ham])?;
    }
    if delta < 0 {
        tx.execute("DELETE FROM bayes_tokens WHERE spam = 0 AND ham = 0", [])?;
    }
    Ok(())
}

pub fn apply_learn(
    tx: &Transaction<'_>,
    learn: BayesLearn,
    weights: &mut BatchWeights<'_>,
    changes: &mut Vec<IndexChange>,
) -> rusqlite::Result<Outcome> {
    let Some(class) = Class::parse(&learn.class) else {
        return Ok(Outcome::Refused(format!("unknown class {:?}", learn.class)));
    };
    let known: Option<(String, Vec<u8>)> = tx
        .query_row(
            "SELECT class, tokens FROM bayes_learned WHERE fingerprint = ?1",
            [&learn.fingerprint],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let change = match known {
        Some((was, _)) if was == class.as_str() => {
            return Ok(Outcome::Learned {
                change: LearnChange::Unchanged,
            })
        }
        Some((was, blob)) => {
            let old_tokens = tokens_of_blob(&blob);
            let old_class = Class::parse(&was).unwrap_or(Class::Ham);
            count(tx, &old_tokens, old_class, -1)?;
            changes.push(IndexChange::Bayes {
                tokens: old_tokens,
                class: old_class,
                delta: -1,
            });
            LearnChange::Moved
        }
        None => LearnChange::New,
    };
    count(tx, &learn.tokens, class, 1)?;
    let features = logistic::valid_features(&learn.features);
    tx.execute(
        "INSERT INTO bayes_learned (fingerprint, class, tokens, author, features)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (fingerprint) DO UPDATE SET class = excluded.class,
           tokens = excluded.tokens, author = excluded.author, features = excluded.features",
        params![
            learn.fingerprint,
            class.as_str(),
            tokens_blob(&learn.tokens),
            learn.author,
            logistic::features_blob(&features),
        ],
    )?;
    logistic::teach(tx, weights, &features, class)?;
    changes.push(IndexChange::Bayes {
        tokens: learn.tokens,
        class,
        delta: 1,
    });
    Ok(Outcome::Learned { change })
}

/// The table as the database holds it.
pub fn load_table(conn: &Connection) -> rusqlite::Result<TokenTable> {
    let mut table = TokenTable::default();
    let mut stmt = conn.prepare("SELECT token, spam, ham FROM bayes_tokens")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)? as u64,
            r.get::<_, u32>(1)?,
            r.get::<_, u32>(2)?,
        ))
    })?;
    for row in rows {
        let (token, spam, ham) = row?;
        table.set(token, spam, ham);
    }
    let mut stmt = conn.prepare("SELECT class, COUNT(*) FROM bayes_learned GROUP BY class")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (class, n) = row?;
        match Class::parse(&class) {
            Some(Class::Spam) => table.spam_messages = n as u64,
            Some(Class::Ham) => table.ham_messages = n as u64,
            None => {}
        }
    }
    Ok(table)
}

/// Everything learned, in a canonical order, for the state digest.
pub fn digest_rows(conn: &Connection, out: &mut dyn FnMut(&[u8])) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT token, spam, ham FROM bayes_tokens ORDER BY token")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        out(format!(
            "bt:{}:{}:{}",
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?
        )
        .as_bytes());
    }
    let mut stmt =
        conn.prepare("SELECT fingerprint, class, author FROM bayes_learned ORDER BY fingerprint")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        out(format!(
            "bl:{}:{}:{}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?
        )
        .as_bytes());
    }
    Ok(())
}
