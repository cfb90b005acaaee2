//! Who gets a session: connection limits in total and per client network (an IPv4 address,
//! an IPv6 /64, since one host holds a whole /64), stress mode past a high-water mark (the
//! idle timeouts drop to seconds), and, when every slot is taken, the oldest session that
//! is not inside DATA closed to make room — so a flood of idle connections can never keep
//! a legitimate client out for longer than it takes to say `421` to one idler.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::protocol::SMTP_EVICTED;
use crate::sync::lock;

/// Connection limits of a listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// Per IPv4 address or IPv6 /64.
    pub max_per_ip: usize,
    /// Open sessions from which the listener is under stress: shorter idle timeouts, a
    /// pause before the banner to catch clients that talk first.
    pub stress_at: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1000,
            max_per_ip: 20,
            stress_at: 750,
        }
    }
}

/// The network a client is counted under.
fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// How loaded the listener is, shared with every session's ticket.
#[derive(Debug, Default)]
struct Pressure {
    open: AtomicUsize,
    stress_at: usize,
}

/// One session's place in the table: whether it may be closed to make room, and the
/// signal that it must.
#[derive(Debug)]
pub struct Ticket {
    id: u64,
    network: IpAddr,
    in_data: AtomicBool,
    evict: Notify,
    pressure: Arc<Pressure>,
}

impl Ticket {
    /// A ticket outside any listener (tests, fuzzing): never stressed, never evicted.
    pub fn unlisted() -> Ticket {
        Ticket {
            id: 0,
            network: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            in_data: AtomicBool::new(false),
            evict: Notify::new(),
            pressure: Arc::new(Pressure {
                open: AtomicUsize::new(0),
                stress_at: usize::MAX,
            }),
        }
    }

    /// Whether the listener is past its high-water mark.
    pub fn stressed(&self) -> bool {
        self.pressure.open.load(Ordering::Relaxed) >= self.pressure.stress_at
    }

    /// The session says whether a message is coming in (such a session is not evicted).
    pub fn set_in_data(&self, in_data: bool) {
        self.in_data.store(in_data, Ordering::Relaxed);
    }

    /// Resolves when the listener wants this session's slot back.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }
}

/// Why a connection gets no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Its network has as many sessions as it may.
    PerNetwork,
    /// Every slot is taken by a session inside DATA.
    Full,
}

#[derive(Default)]
struct Table {
    per_network: HashMap<IpAddr, usize>,
    /// Oldest first.
    open: BTreeMap<u64, Arc<Ticket>>,
    next_id: u64,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Arc<Ticket>> {
        let ticket = self.open.remove(&id)?;
        if let Some(n) = self.per_network.get_mut(&ticket.network) {
            *n -= 1;
            if *n == 0 {
                self.per_network.remove(&ticket.network);
            }
        }
        Some(ticket)
    }
}

/// The listener's table of sessions.
pub struct Admissions {
    limits: ConnectionLimits,
    table: Arc<Mutex<Table>>,
    pressure: Arc<Pressure>,
}

impl Admissions {
    pub fn new(limits: ConnectionLimits) -> Admissions {
        Admissions {
            limits,
            table: Arc::default(),
            pressure: Arc::new(Pressure {
                open: AtomicUsize::new(0),
                stress_at: limits.stress_at,
            }),
        }
    }

    /// A slot for a client at `ip`, closing the oldest session not inside DATA when every
    /// slot is taken.
    pub fn admit(&self, ip: IpAddr) -> Result<Slot, Refused> {
        let network = network_of(ip);
        let mut table = lock(&self.table);
        if table.per_network.get(&network).copied().unwrap_or(0) >= self.limits.max_per_ip {
            return Err(Refused::PerNetwork);
        }
        if table.open.len() >= self.limits.max_connections {
            let victim = table
                .open
                .values()
                .find(|t| !t.in_data.load(Ordering::Relaxed))
                .map(|t| t.id)
                .ok_or(Refused::Full)?;
            if let Some(ticket) = table.remove(victim) {
                ticket.evict.notify_one();
                metrics::counter!(SMTP_EVICTED).increment(1);
            }
        }
        table.next_id += 1;
        let ticket = Arc::new(Ticket {
            id: table.next_id,
            network,
            in_data: AtomicBool::new(false),
            evict: Notify::new(),
            pressure: self.pressure.clone(),
        });
        *table.per_network.entry(network).or_default() += 1;
        table.open.insert(ticket.id, ticket.clone());
        self.pressure
            .open
            .store(table.open.len(), Ordering::Relaxed);
        Ok(Slot {
            ticket,
            table: self.table.clone(),
        })
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        lock(&self.table).open.len()
    }
}

/// A session's slot; given back when dropped (unless it was already taken back).
pub struct Slot {
    ticket: Arc<Ticket>,
    table: Arc<Mutex<Table>>,
}

impl Slot {
    pub fn ticket(&self) -> &Ticket {
        &self.ticket
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = lock(&self.table);
        table.remove(self.ticket.id);
        self.ticket
            .pressure
            .open
            .store(table.open.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_ip: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            max_per_ip: per_ip,
            stress_at: max / 2,
        }
    }

    #[test]
    fn an_ipv6_64_counts_as_one_client() {
        let a = Admissions::new(limits(100, 2));
        let _one = a.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        let _two = a.admit("2001:db8:1:2:ffff::9".parse().unwrap()).unwrap();
        assert_eq!(
            a.admit("2001:db8:1:2::3".parse().unwrap()).err(),
            Some(Refused::PerNetwork)
        );
        assert!(a.admit("2001:db8:1:3::1".parse().unwrap()).is_ok());
        let _v4 = a.admit("192.0.2.1".parse().unwrap()).unwrap();
        let _v4b = a.admit("192.0.2.2".parse().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn a_full_table_evicts_the_oldest_session_not_in_data() {
        let a = Admissions::new(limits(3, 10));
        let oldest = a.admit("192.0.2.1".parse().unwrap()).unwrap();
        oldest.ticket().set_in_data(true);
        let second = a.admit("192.0.2.2".parse().unwrap()).unwrap();
        let _third = a.admit("192.0.2.3".parse().unwrap()).unwrap();
        assert!(second.ticket().stressed(), "past the high-water mark");
        let _new = a.admit("192.0.2.4".parse().unwrap()).unwrap();
        // The oldest is inside DATA: the second is the one told to go.
        tokio::time::timeout(std::time::Duration::from_secs(5), second.ticket().evicted())
            .await
            .expect("the second session is evicted");
        assert_eq!(a.open(), 3);
        drop(second);
        assert_eq!(a.open(), 3, "an evicted slot is not given back twice");
        drop(oldest);
        assert_eq!(a.open(), 2);
    }

    #[test]
    fn a_table_full_of_messages_in_progress_refuses() {
        let a = Admissions::new(limits(1, 10));
        let busy = a.admit("192.0.2.1".parse().unwrap()).unwrap();
        busy.ticket().set_in_data(true);
        assert_eq!(
            a.admit("192.0.2.2".parse().unwrap()).err(),
            Some(Refused::Full)
        );
    }
}
