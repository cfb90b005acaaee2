//! A DNS server for tests, on loopback: it answers TXT questions (SPF, DKIM keys, DMARC
//! policies) and A questions (blocklist listings) from tables the test fills, and NXDOMAIN
//! to everything else, so sender
//! authentication is tested offline. It runs on a thread of its own (a test blocked in a
//! synchronous SMTP client must not stall it), and stops when dropped.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{MX, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
/// Records by (name, type).
type Table = Arc<Mutex<HashMap<(String, RecordType), String>>>;

pub struct DnsServer {
    pub addr: SocketAddr,
    table: Table,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl DnsServer {
    /// Serves `txt` (name without the final dot → record text) on `ip`, an ephemeral port.
    pub fn start(ip: &str, txt: &[(&str, &str)]) -> anyhow::Result<DnsServer> {
        DnsServer::start_with_addresses(ip, txt, &[])
    }

    /// As `start`, answering A questions from `a` (name → IPv4 address) too.
    pub fn start_with_addresses(
        ip: &str,
        txt: &[(&str, &str)],
        a: &[(&str, &str)],
    ) -> anyhow::Result<DnsServer> {
        let socket = UdpSocket::bind(format!("{ip}:0"))?;
        // Wakes up now and then to see whether it is to stop.
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = socket.local_addr()?;
        let records: HashMap<(String, RecordType), String> = txt
            .iter()
            .map(|(n, v)| ((n.to_ascii_lowercase(), RecordType::TXT), (*v).to_owned()))
            .chain(
                a.iter()
                    .map(|(n, v)| ((n.to_ascii_lowercase(), RecordType::A), (*v).to_owned())),
            )
            .collect();
        let table: Table = Arc::new(Mutex::new(records));
        let served = table.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while !stopping.load(Ordering::SeqCst) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let reply = answer(&served.lock().unwrap(), &buf[..n]);
                if let Some(reply) = reply {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        Ok(DnsServer {
            addr,
            table,
            stop,
            thread: Some(thread),
        })
    }
}

impl DnsServer {
    /// Publishes one more TXT record (a key made after the server started).
    pub fn add_txt(&self, name: &str, text: &str) {
        self.add(name, RecordType::TXT, text);
    }

    /// Names `exchange` the mail server of `domain`, and `ip` its address.
    pub fn add_mx(&self, domain: &str, exchange: &str, ip: &str) {
        self.add_mxs(domain, &[(10, exchange, ip)]);
    }

    /// Several exchanges for `domain`: (preference, exchange, its address).
    pub fn add_mxs(&self, domain: &str, exchanges: &[(u16, &str, &str)]) {
        let records: Vec<String> = exchanges
            .iter()
            .map(|(preference, exchange, _)| format!("{preference} {exchange}"))
            .collect();
        self.add(domain, RecordType::MX, &records.join(","));
        for (_, exchange, ip) in exchanges {
            self.add(exchange, RecordType::A, ip);
        }
    }

    fn add(&self, name: &str, kind: RecordType, value: &str) {
        let key = (name.trim_end_matches('.').to_ascii_lowercase(), kind);
        self.table.lock().unwrap().insert(key, value.to_owned());
    }
}

fn answer(table: &HashMap<(String, RecordType), String>, query: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let question = query.queries.first()?.clone();
    let name = question.name().to_ascii();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let found = table.get(&(name.clone(), question.query_type()));
    let mut reply = match found {
        Some(_) => Message::response(query.metadata.id, OpCode::Query),
        None => Message::error_msg(query.metadata.id, OpCode::Query, ResponseCode::NXDomain),
    };
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.queries.push(question.clone());
    let owner = Name::from_ascii(format!("{name}.")).ok()?;
    if let (Some(exchanges), RecordType::MX) = (found, question.query_type()) {
        for record in exchanges.split(',') {
            let (preference, exchange) = record.split_once(' ')?;
            let exchange = Name::from_ascii(format!("{exchange}.")).ok()?;
            let mx = MX::new(preference.parse().ok()?, exchange);
            reply.add_answer(Record::from_rdata(owner.clone(), 60, RData::MX(mx)));
        }
    } else if let (Some(address), RecordType::A) = (found, question.query_type()) {
        let address: std::net::Ipv4Addr = address.parse().ok()?;
        reply.add_answer(Record::from_rdata(owner, 60, RData::A(address.into())));
    } else if let Some(text) = found {
        // TXT strings are at most 255 bytes each; long records (DKIM keys) come in pieces.
        let pieces: Vec<String> = text
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        reply.add_answer(Record::from_rdata(owner, 60, RData::TXT(TXT::new(pieces))));
    }
    reply.to_vec().ok()
}
