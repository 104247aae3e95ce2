//! A [`Network`] for outbound tests: names resolve to what the test says (an answer may change from one
//! lookup to the next), and addresses it routes are served by loopback servers, so a test can play a
//! public host, a DNS record pointing at a metadata service, or a rebinding attack without leaving
//! `127.0.0.1`. It never dials anything but loopback.

use nimbus_core::caps::outbound::network::{BoxFuture, Network};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use tokio::net::TcpStream;

/// The test network.
#[derive(Default)]
pub struct FakeNetwork {
    /// Per name, the answers still to give; the last one is repeated.
    answers: Mutex<HashMap<String, VecDeque<Vec<IpAddr>>>>,
    /// Address the guest connects to → loopback server that answers for it.
    routes: Mutex<HashMap<SocketAddr, SocketAddr>>,
    lookups: Mutex<Vec<String>>,
    dials: Mutex<Vec<SocketAddr>>,
}

impl FakeNetwork {
    /// `name` resolves to `ips` (IP addresses as text), every time.
    pub fn answer(&self, name: &str, ips: &[&str]) {
        self.answers_in_turn(name, &[ips]);
    }

    /// `name` resolves to `answers[0]` on its first lookup, `answers[1]` on its second, …, then the
    /// last answer forever.
    pub fn answers_in_turn(&self, name: &str, answers: &[&[&str]]) {
        let answers = answers
            .iter()
            .map(|ips| ips.iter().map(|ip| ip.parse().expect("an IP address")).collect())
            .collect();
        self.answers.lock().unwrap().insert(name.to_owned(), answers);
    }

    /// Connections to `addr` reach the loopback server at `to`.
    pub fn route(&self, addr: SocketAddr, to: SocketAddr) {
        self.routes.lock().unwrap().insert(addr, to);
    }

    /// How many times `name` was looked up.
    pub fn lookups(&self, name: &str) -> usize {
        self.lookups.lock().unwrap().iter().filter(|n| *n == name).count()
    }

    /// Every address a connection was asked for, in order.
    pub fn dials(&self) -> Vec<SocketAddr> {
        self.dials.lock().unwrap().clone()
    }
}

impl Network for FakeNetwork {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        self.lookups.lock().unwrap().push(host.to_owned());
        let mut answers = self.answers.lock().unwrap();
        let answer = match answers.get_mut(host) {
            Some(queue) if queue.len() > 1 => queue.pop_front(),
            Some(queue) => queue.front().cloned(),
            None => None,
        };
        let result = match answer {
            Some(ips) => Ok(ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect()),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("no such name: {host}"))),
        };
        Box::pin(async move { result })
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<TcpStream>> {
        self.dials.lock().unwrap().push(addr);
        let to = self.routes.lock().unwrap().get(&addr).copied().unwrap_or(addr);
        Box::pin(async move {
            if !to.ip().is_loopback() {
                return Err(io::Error::other(format!("the test network does not reach {to}")));
            }
            TcpStream::connect(to).await
        })
    }
}
