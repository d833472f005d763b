//! The redb side of persistence: the table layout, opening and loading a file, and the
//! writer thread that applies queued commits in grouped engine transactions.
//!
//! Layout (all keys and values are raw bytes, decoded here with explicit error handling,
//! so a damaged file is a [`StoreError`] naming the file, never a panic):
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `format` | format version (`1`) |
//! | `buckets` | bucket name | `BucketDefinition` JSON |
//! | `records/<bucket>` (one per bucket) | canonical key string | seq (u64 LE) + record JSON |
//! | `counters` | bucket name | autoincrement counter (u64 LE) |
//! | `queries` | query name | `QueryDefinition` JSON |
//! | `aux` | namespace length (u32 LE) + namespace + key | value JSON |
//!
//! `seq` is the record's position in its bucket's insertion order, so a reload restores
//! `all()` order and `maxSize` eviction order exactly. Dropping a bucket empties its
//! records table; start-up deletes records tables of buckets that are not defined.

use redb::{
    Database, Durability, ReadableTable, TableDefinition, TableError, TableHandle, WriteTransaction,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use super::{AuxMap, DurabilityMode, Msg, Op, Shared, file_error};
use crate::definition::{BucketDefinition, QueryDefinition};
use crate::error::StoreResult;
use crate::value::{Record, is_expired};

type Bytes = &'static [u8];

const META: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("meta");
const BUCKETS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("buckets");
const COUNTERS: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("counters");
const QUERIES: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("queries");
const AUX: TableDefinition<'_, Bytes, Bytes> = TableDefinition::new("aux");

const FORMAT_KEY: &[u8] = b"format";
const FORMAT_VERSION: &[u8] = b"1";

/// Most queued commits applied in one engine transaction.
const MAX_GROUP: usize = 4096;

fn records_table_name(bucket: &str) -> String {
    format!("records/{bucket}")
}

/// A bucket as read from the file.
pub(crate) struct LoadedBucket {
    /// Bucket name.
    pub name: String,
    /// Its definition.
    pub def: BucketDefinition,
    /// Live records with their insertion position, sorted by position.
    pub records: Vec<(u64, Record)>,
    /// The persisted autoincrement counter (0 when none).
    pub counter: u64,
}

/// Everything a file holds, ready to be installed into a new store.
#[derive(Default)]
pub(crate) struct Snapshot {
    /// Buckets in name order.
    pub buckets: Vec<LoadedBucket>,
    /// Declarative queries in name order.
    pub queries: Vec<(String, QueryDefinition)>,
    /// The side table.
    pub aux: AuxMap,
    /// Records dropped at load because their TTL had passed.
    pub expired: usize,
}

/// The text of a caught panic.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Opens or creates the database at `path` and reads it whole. Records expired at `now`
/// are left out and deleted from the file before this returns.
///
/// redb asserts on some kinds of damage (e.g. a truncated file) instead of returning an
/// error; such a panic is caught here and becomes an error naming the file, like any
/// other unreadable content.
pub(crate) fn open_and_load(path: &Path, now: u64) -> StoreResult<(Database, Snapshot)> {
    catch_unwind(AssertUnwindSafe(|| open_and_load_unguarded(path, now))).unwrap_or_else(|p| {
        Err(file_error(
            path,
            format!(
                "damaged; the storage engine failed reading it: {}",
                panic_text(&*p)
            ),
        ))
    })
}

fn open_and_load_unguarded(path: &Path, now: u64) -> StoreResult<(Database, Snapshot)> {
    let err = |e: &dyn std::fmt::Display| file_error(path, e);
    let db = Database::builder()
        .create_with_file_format_v3(true)
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::Storage(redb::StorageError::Io(io))
                if io.kind() == std::io::ErrorKind::InvalidData =>
            {
                err(&"not a noex-store database, or damaged (invalid data)")
            }
            e => err(&format!("cannot open the database: {e}")),
        })?;
    init(&db).map_err(|e| err(&e))?;
    let (snapshot, expired) = load(&db, now).map_err(|e| err(&e))?;
    if !expired.is_empty() {
        delete_records(&db, &expired).map_err(|e| err(&e))?;
    }
    Ok((db, snapshot))
}

/// Creates the fixed tables and checks (or writes) the format version.
fn init(db: &Database) -> Result<(), String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
        let current = meta
            .get(FORMAT_KEY)
            .map_err(|e| e.to_string())?
            .map(|v| v.value().to_vec());
        match current {
            None => {
                meta.insert(FORMAT_KEY, FORMAT_VERSION)
                    .map_err(|e| e.to_string())?;
            }
            Some(v) if v == FORMAT_VERSION => {}
            Some(v) => {
                return Err(format!(
                    "unsupported format version {:?} (this build reads {:?})",
                    String::from_utf8_lossy(&v),
                    String::from_utf8_lossy(FORMAT_VERSION)
                ));
            }
        }
        for table in [BUCKETS, COUNTERS, QUERIES, AUX] {
            txn.open_table(table).map_err(|e| e.to_string())?;
        }
        // Records tables of dropped buckets (emptied when the bucket was dropped).
        let defined: Vec<String> = {
            let buckets = txn.open_table(BUCKETS).map_err(|e| e.to_string())?;
            let mut names = Vec::new();
            for entry in buckets.iter().map_err(|e| e.to_string())? {
                let (k, _) = entry.map_err(|e| e.to_string())?;
                names.push(records_table_name(&String::from_utf8_lossy(k.value())));
            }
            names
        };
        let orphans: Vec<String> = txn
            .list_tables()
            .map_err(|e| e.to_string())?
            .map(|t| t.name().to_owned())
            .filter(|n| n.starts_with("records/") && !defined.contains(n))
            .collect();
        for name in orphans {
            txn.delete_table(TableDefinition::<Bytes, Bytes>::new(&name))
                .map_err(|e| e.to_string())?;
        }
    }
    txn.commit().map_err(|e| e.to_string())
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not valid UTF-8"))
}

fn u64_le(bytes: &[u8], what: &str) -> Result<u64, String> {
    let arr: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{what} is truncated"))?;
    Ok(u64::from_le_bytes(arr))
}

fn aux_key(namespace: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + namespace.len() + key.len());
    // Namespaces are short strings; a longer one is cut at u32::MAX by construction.
    let len = u32::try_from(namespace.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(namespace.as_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

fn split_aux_key(bytes: &[u8]) -> Result<(String, String), String> {
    let len: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or("side-table key is truncated")?;
    let len = u32::from_le_bytes(len) as usize;
    let ns = bytes.get(4..4 + len).ok_or("side-table key is truncated")?;
    let key = bytes.get(4 + len..).unwrap_or_default();
    Ok((
        utf8(ns, "side-table namespace")?,
        utf8(key, "side-table key")?,
    ))
}

/// Reads every table. Returns the snapshot and the (bucket, key) of expired records.
fn load(db: &Database, now: u64) -> Result<(Snapshot, Vec<(String, String)>), String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let mut snapshot = Snapshot::default();
    let mut expired = Vec::new();

    let counters: BTreeMap<String, u64> = {
        let table = txn.open_table(COUNTERS).map_err(|e| e.to_string())?;
        let mut out = BTreeMap::new();
        for entry in table.iter().map_err(|e| e.to_string())? {
            let (k, v) = entry.map_err(|e| e.to_string())?;
            let name = utf8(k.value(), "counter name")?;
            let value = u64_le(v.value(), &format!("counter of bucket \"{name}\""))?;
            out.insert(name, value);
        }
        out
    };

    let buckets = txn.open_table(BUCKETS).map_err(|e| e.to_string())?;
    for entry in buckets.iter().map_err(|e| e.to_string())? {
        let (k, v) = entry.map_err(|e| e.to_string())?;
        let name = utf8(k.value(), "bucket name")?;
        let def: BucketDefinition = serde_json::from_slice(v.value())
            .map_err(|e| format!("definition of bucket \"{name}\" is unreadable: {e}"))?;
        let table_name = records_table_name(&name);
        let mut records = Vec::new();
        match txn.open_table(TableDefinition::<Bytes, Bytes>::new(&table_name)) {
            Ok(table) => {
                for entry in table.iter().map_err(|e| e.to_string())? {
                    let (k, v) = entry.map_err(|e| e.to_string())?;
                    let key = utf8(k.value(), &format!("a record key of bucket \"{name}\""))?;
                    let bytes = v.value();
                    let what = format!("record {key} of bucket \"{name}\"");
                    let seq = u64_le(bytes, &what)?;
                    let record: Record = serde_json::from_slice(bytes.get(8..).unwrap_or_default())
                        .map_err(|e| format!("{what} is unreadable: {e}"))?;
                    if is_expired(&record, now) {
                        expired.push((name.clone(), key));
                    } else {
                        records.push((seq, record));
                    }
                }
            }
            Err(TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
        records.sort_by_key(|(seq, _)| *seq);
        snapshot.buckets.push(LoadedBucket {
            counter: counters.get(&name).copied().unwrap_or(0),
            name,
            def,
            records,
        });
    }

    let queries = txn.open_table(QUERIES).map_err(|e| e.to_string())?;
    for entry in queries.iter().map_err(|e| e.to_string())? {
        let (k, v) = entry.map_err(|e| e.to_string())?;
        let name = utf8(k.value(), "query name")?;
        let def: QueryDefinition = serde_json::from_slice(v.value())
            .map_err(|e| format!("definition of query \"{name}\" is unreadable: {e}"))?;
        snapshot.queries.push((name, def));
    }

    let aux = txn.open_table(AUX).map_err(|e| e.to_string())?;
    for entry in aux.iter().map_err(|e| e.to_string())? {
        let (k, v) = entry.map_err(|e| e.to_string())?;
        let (ns, key) = split_aux_key(k.value())?;
        let value: Value = serde_json::from_slice(v.value())
            .map_err(|e| format!("side-table entry {ns}/{key} is unreadable: {e}"))?;
        snapshot.aux.entry(ns).or_default().insert(key, value);
    }
    snapshot.expired = expired.len();
    Ok((snapshot, expired))
}

fn delete_records(db: &Database, keys: &[(String, String)]) -> Result<(), String> {
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    for (bucket, key) in keys {
        let name = records_table_name(bucket);
        let mut table = txn
            .open_table(TableDefinition::<Bytes, Bytes>::new(&name))
            .map_err(|e| e.to_string())?;
        table.remove(key.as_bytes()).map_err(|e| e.to_string())?;
    }
    txn.commit().map_err(|e| e.to_string())
}

/// A redb error, boxed (redb's error enum is large and travels through every `?`).
struct EngineError(Box<redb::Error>);

impl<E: Into<redb::Error>> From<E> for EngineError {
    fn from(e: E) -> Self {
        EngineError(Box::new(e.into()))
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Applies `msgs` in one engine transaction and commits it durably.
fn apply(db: &Database, msgs: &[Msg]) -> Result<(), EngineError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    apply_ops(&txn, msgs.iter().flat_map(|m| &m.ops))?;
    txn.commit()?;
    Ok(())
}

fn apply_ops<'a>(
    txn: &WriteTransaction,
    ops: impl Iterator<Item = &'a Op>,
) -> Result<(), EngineError> {
    let mut buckets = txn.open_table(BUCKETS)?;
    let mut counters = txn.open_table(COUNTERS)?;
    let mut queries = txn.open_table(QUERIES)?;
    let mut aux = txn.open_table(AUX)?;
    // The records table of the bucket touched last: consecutive record ops of one bucket
    // (the common case) open it once.
    let mut current: Option<(String, redb::Table<'_, Bytes, Bytes>)> = None;
    // Counters only grow and every commit carries its bucket's: within one engine
    // transaction only the last value per bucket needs writing.
    let mut latest_counters: BTreeMap<&str, u64> = BTreeMap::new();
    for op in ops {
        match op {
            Op::PutBucket { name, def } => {
                buckets.insert(name.as_bytes(), def.as_bytes())?;
            }
            Op::DropBucket { name } => {
                latest_counters.remove(name.as_str());
                buckets.remove(name.as_bytes())?;
                counters.remove(name.as_bytes())?;
                // Emptied, not deleted: redb 2.6 trips over deleting a table created in the
                // same transaction (which group commit makes common). The empty table is
                // deleted at the next start (see `init`).
                records_of(txn, &mut current, name)?.retain(|_, _| false)?;
            }
            Op::PutRecord {
                bucket,
                key,
                seq,
                record,
            } => {
                let table = records_of(txn, &mut current, bucket)?;
                let mut value = Vec::with_capacity(8 + record.len());
                value.extend_from_slice(&seq.to_le_bytes());
                value.extend_from_slice(record.as_bytes());
                table.insert(key.as_bytes(), value.as_slice())?;
            }
            Op::DeleteRecord { bucket, key } => {
                records_of(txn, &mut current, bucket)?.remove(key.as_bytes())?;
            }
            Op::Counter { bucket, value } => {
                latest_counters.insert(bucket, *value);
            }
            Op::PutQuery { name, def } => {
                queries.insert(name.as_bytes(), def.as_bytes())?;
            }
            Op::DeleteQuery { name } => {
                queries.remove(name.as_bytes())?;
            }
            Op::Aux {
                namespace,
                key,
                value,
            } => {
                let k = aux_key(namespace, key);
                match value {
                    Some(v) => aux.insert(k.as_slice(), v.as_bytes())?,
                    None => aux.remove(k.as_slice())?,
                };
            }
        }
    }
    for (bucket, value) in latest_counters {
        counters.insert(bucket.as_bytes(), value.to_le_bytes().as_slice())?;
    }
    Ok(())
}

fn records_of<'c, 'txn>(
    txn: &'txn WriteTransaction,
    current: &'c mut Option<(String, redb::Table<'txn, Bytes, Bytes>)>,
    bucket: &str,
) -> Result<&'c mut redb::Table<'txn, Bytes, Bytes>, EngineError> {
    if current.as_ref().is_none_or(|(b, _)| b != bucket) {
        *current = None;
        let name = records_table_name(bucket);
        let table = txn.open_table(TableDefinition::<Bytes, Bytes>::new(&name))?;
        *current = Some((bucket.to_owned(), table));
    }
    match current {
        Some((_, table)) => Ok(table),
        None => Err(redb::Error::Corrupted("records table not open".into()).into()),
    }
}

/// The writer thread: takes queued commits in order, groups them (everything already
/// queued in `Sync` mode; up to the window in `Batched` mode), applies each group in one
/// engine transaction and reports the highest durable ticket. Ends when every sender is
/// gone, after writing what was queued.
pub(crate) fn run_writer(
    db: Database,
    rx: Receiver<Msg>,
    mode: DurabilityMode,
    shared: &Shared,
    observer: Option<super::CommitObserver>,
) {
    let mut failed = false;
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        match mode {
            DurabilityMode::Sync => {
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(m) => group.push(m),
                        Err(_) => break,
                    }
                }
            }
            DurabilityMode::Batched { window } => {
                let deadline = Instant::now() + window;
                let mut urgent = group.iter().any(|m| m.urgent);
                while group.len() < MAX_GROUP && !urgent {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(m) => {
                            urgent = m.urgent;
                            group.push(m);
                        }
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
        }
        let last = group.last().map_or(0, |m| m.ticket);
        if failed {
            // After a failed commit nothing later may be written: the file must stay a
            // prefix of the commit sequence. Waiters learn of the failure from `shared`.
            continue;
        }
        // A panic inside the engine must not leave sync writers waiting forever: it
        // fails persistence like an I/O error does.
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| apply(&db, &group)))
            .map_err(|p| format!("the storage engine panicked: {}", panic_text(&*p)))
            .and_then(|r| r.map_err(|e| e.to_string()));
        failed = result.is_err();
        if !failed {
            shared.commits.fetch_add(1, Ordering::Relaxed);
        }
        if let (Some(observe), false) = (&observer, failed) {
            observe(started.elapsed());
        }
        shared.finish(last, result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aux_keys_round_trip() {
        for (ns, key) in [("rules", "r1"), ("", ""), ("facts", "a/b\u{0}c")] {
            assert_eq!(
                split_aux_key(&aux_key(ns, key)),
                Ok((ns.to_owned(), key.to_owned()))
            );
        }
        assert!(split_aux_key(&[1, 0]).is_err());
        assert!(split_aux_key(&[9, 0, 0, 0, b'a']).is_err());
    }

    #[test]
    fn damaged_numbers_are_errors() {
        assert!(u64_le(&[1, 2, 3], "x").is_err());
        assert_eq!(u64_le(&7u64.to_le_bytes(), "x"), Ok(7));
        assert!(utf8(&[0xff], "x").is_err());
    }
}
