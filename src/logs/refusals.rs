//! Refused anonymous requests (a 4xx answered before any credential was resolved) are what an
//! unauthenticated client can produce without limit, so they are not recorded one by one: the
//! requests of one client, route, status and minute become one record carrying their number
//! (`count`). The groups live here until their minute is over (the log writer takes them every
//! second), a list wants to see them, the table is full, or the server stops.

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

use super::record::{RequestLog, Text};

/// Groups held at most; past this the whole table is written out at once, so memory stays
/// bounded whatever the number of distinct clients.
pub const MAX_GROUPS: usize = 10_000;

/// What makes two refused requests "the same": client, route (the operation, never the raw
/// path, which the client chooses), HTTP status and minute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    client: String,
    service: Text,
    method: Text,
    status: Option<u16>,
    minute: i64,
}

/// The client part of the key: an IPv6 client is its /64, the block one subscriber holds, so
/// that cycling through its addresses does not make one group per request.
fn client_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => ip.to_string(),
    }
}

/// The open groups: the first request of each, its `count` grown by the later ones.
#[derive(Default)]
pub struct Refusals {
    groups: Mutex<HashMap<Key, RequestLog>>,
}

impl Refusals {
    /// Counts `rec` into its group. Returns the records to write now: every group, when the
    /// table was full; else nothing.
    pub fn add(&self, rec: RequestLog) -> Vec<RequestLog> {
        let key = Key {
            client: client_key(&rec.client_ip),
            service: rec.service_name.clone(),
            method: rec.method_name.clone(),
            status: rec.http_status,
            minute: rec.created_at.div_euclid(60),
        };
        let mut groups = self.groups.lock();
        if let Some(group) = groups.get_mut(&key) {
            group.count = group.count.saturating_add(rec.count.max(1));
            return Vec::new();
        }
        let full = groups.len() >= MAX_GROUPS;
        groups.insert(key, rec);
        if full {
            return groups.drain().map(|(_, r)| r).collect();
        }
        Vec::new()
    }

    /// Takes the groups whose minute ended before `now` (unix seconds).
    pub fn take_due(&self, now: i64) -> Vec<RequestLog> {
        let minute = now.div_euclid(60);
        let mut groups = self.groups.lock();
        if groups.keys().all(|k| k.minute >= minute) {
            return Vec::new();
        }
        // The keys are copied out first so the map can be mutated (extract_if needs Rust 1.88,
        // above the crate's MSRV).
        #[allow(clippy::needless_collect)]
        let due: Vec<Key> = groups.keys().filter(|k| k.minute < minute).cloned().collect();
        due.into_iter().filter_map(|k| groups.remove(&k)).collect()
    }

    /// Takes every group (a list is about to read, or the server stops).
    pub fn take_all(&self) -> Vec<RequestLog> {
        let mut groups = self.groups.lock();
        if groups.is_empty() {
            return Vec::new();
        }
        groups.drain().map(|(_, r)| r).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str, method: &'static str, status: u16, at: i64) -> RequestLog {
        RequestLog {
            client_ip: ip.into(),
            service_name: "gatehouse.Http".into(),
            method_name: method.into(),
            http_status: Some(status),
            created_at: at,
            request_id: format!("{ip}-{at}"),
            ..RequestLog::default()
        }
    }

    #[test]
    fn one_record_per_client_route_status_and_minute() {
        let r = Refusals::default();
        for i in 0..200 {
            assert!(r.add(refused("10.0.0.1", "not_found", 404, 600 + i % 60)).is_empty());
        }
        r.add(refused("10.0.0.1", "not_found", 401, 601));
        r.add(refused("10.0.0.2", "not_found", 404, 601));
        r.add(refused("10.0.0.1", "login", 404, 601));
        r.add(refused("10.0.0.1", "not_found", 404, 660));
        // The minute 10 groups are due at minute 11, not before; the minute 11 one stays.
        assert!(r.take_due(659).is_empty());
        let mut due = r.take_due(661);
        due.sort_by_key(|d| std::cmp::Reverse(d.count));
        assert_eq!(due.iter().map(|d| d.count).collect::<Vec<_>>(), vec![200, 1, 1, 1]);
        assert_eq!(due[0].request_id, "10.0.0.1-600", "the first request speaks for the group");
        let rest = r.take_all();
        assert_eq!((rest.len(), rest[0].created_at), (1, 660));
        assert!(r.take_all().is_empty());
    }

    #[test]
    fn ipv6_clients_group_by_their_64_and_the_table_is_bounded() {
        let r = Refusals::default();
        for i in 0..50u32 {
            r.add(refused(&format!("2001:db8:1:2::{i:x}"), "not_found", 401, 0));
        }
        let all = r.take_all();
        assert_eq!((all.len(), all[0].count), (1, 50));
        let mut written = 0;
        for i in 0..MAX_GROUPS + 5 {
            written += r.add(refused(&format!("10.{}.{}.1", i / 256, i % 256), "x", 401, 0)).len();
        }
        assert_eq!(written, MAX_GROUPS + 1);
        assert_eq!(r.take_all().len(), 4);
    }
}
