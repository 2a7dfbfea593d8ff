//! The request log's tables: records, series, roll-ups and active keys. Keys and values are described on each line; record tables hold
//! `Versioned<T>` bytes (see `store::codec`).

use crate::store::schema::TableInfo;
#[allow(unused_imports)] // each area uses a different subset of the three shapes
use crate::store::{IndexTable, LookupTable, RecordTable};

/// `sequence → RequestLog`: every logged request (sequence `request_log`, the writer's order).
pub const REQUEST_LOGS: RecordTable<crate::logs::RequestLog> = RecordTable::new("request_logs");
/// `(minute of created_at, sequence)`: request records by time, for retention.
pub const REQUEST_LOGS_BY_MINUTE: IndexTable = IndexTable::new("request_logs_by_minute");
/// `series id → Series`: every (service, method) pair seen in the request log.
pub const LOG_SERIES: RecordTable<crate::logs::rollups::Series> = RecordTable::new("log_series");
/// `"service\u{1f}method" → series id`.
pub const LOG_SERIES_IDS: LookupTable = LookupTable::new("log_series_ids");
/// `minute << 20 | series id → Bucket`: per-minute roll-ups.
pub const ROLLUP_MINUTE: RecordTable<crate::logs::rollups::Bucket> =
    RecordTable::new("rollup_minute");
/// `hour << 20 | series id → Bucket`: per-hour roll-ups (the same data, coarser).
pub const ROLLUP_HOUR: RecordTable<crate::logs::rollups::Bucket> = RecordTable::new("rollup_hour");
/// `(hour, API key id)`: keys that made requests in an hour (`active_api_keys`).
pub const LOG_KEYS_BY_HOUR: IndexTable = IndexTable::new("log_keys_by_hour");

/// This area's tables, for the schema registry (backup, check, dumps).
pub const TABLES: &[TableInfo] = &[
    REQUEST_LOGS.info(),
    REQUEST_LOGS_BY_MINUTE.info(),
    LOG_SERIES.info(),
    LOG_SERIES_IDS.info(),
    ROLLUP_MINUTE.info(),
    ROLLUP_HOUR.info(),
    LOG_KEYS_BY_HOUR.info(),
];
