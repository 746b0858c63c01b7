//! Three regions on one machine: region A is the test's own network
//! namespace, B and C are namespaces of their own, and a router namespace
//! joins the three over veth pairs. UDP crossing the router between regions
//! (media) is held for [`Wan::delay`] each way; TCP (the nodes' PostgreSQL and
//! NATS, reached through `socat` in region A) crosses at once.
//!
//! The delay is a line of this process: this machine's kernel has no
//! `sch_netem`, so the router queues the datagrams to user space (iptables'
//! `NFQUEUE` target) and a thread of the test accepts each one `delay` after
//! it arrived, in order.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::browser::run_or_fail as run;

/// Region A's address: the test's namespace, on its veth to the router.
pub const A: &str = "10.81.1.2";
/// Region B's address, in namespace [`Wan::b`].
pub const B: &str = "10.81.2.2";
/// Region C's address, in namespace [`Wan::c`].
pub const C: &str = "10.81.3.2";

/// The NFQUEUE the router hands inter-region datagrams to.
const QUEUE: u16 = 81;

/// The three regions and the router between them; torn down on drop.
pub struct Wan {
    tag: String,
    /// Region B's namespace.
    pub b: String,
    /// Region C's namespace.
    pub c: String,
    router: String,
    /// How long each inter-region datagram is held, each way.
    pub delay: Duration,
    /// `host:port` in region A where PostgreSQL (127.0.0.1:5432) answers.
    pub postgres: String,
    /// `host:port` in region A where NATS (127.0.0.1:4222) answers.
    pub nats: String,
    forwarders: Vec<Child>,
    stop: Arc<AtomicBool>,
    delayed: Arc<AtomicU64>,
    line: Option<std::thread::JoinHandle<()>>,
}

/// Runs `args` inside namespace `ns`.
fn run_in(ns: &str, args: &[&str]) {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    run("ip", &all);
}

/// A TCP port free on `ip` just now.
fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Removes what a run of this test killed before its teardown left behind
/// (its address in region A would shadow this run's).
fn sweep_leftovers() {
    let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name
            .strip_prefix("sbwan")
            .and_then(|rest| rest.get(..rest.len().saturating_sub(1)))
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
    let held = Command::new("ip")
        .args(["-o", "addr", "show", "to", A])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&held.stdout).lines() {
        if let Some(dev) = line.split_whitespace().nth(1) {
            let dev = dev.split('@').next().unwrap_or(dev);
            let _ = Command::new("ip").args(["link", "del", dev]).status();
        }
    }
}

impl Wan {
    /// Builds the regions with `delay` between any two of them.
    pub fn new(delay: Duration) -> Self {
        sweep_leftovers();
        let tag = format!("sbwan{}", std::process::id());
        let (router, b, c) = (format!("{tag}r"), format!("{tag}b"), format!("{tag}c"));
        for ns in [&router, &b, &c] {
            run("ip", &["netns", "add", ns]);
            run_in(ns, &["ip", "link", "set", "lo", "up"]);
        }
        let mut wan = Self {
            tag: tag.clone(),
            b: b.clone(),
            c: c.clone(),
            router: router.clone(),
            delay,
            postgres: String::new(),
            nats: String::new(),
            forwarders: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            delayed: Arc::new(AtomicU64::new(0)),
            line: None,
        };
        // Region A: this namespace's end of a veth to the router.
        let a_dev = format!("{}a", &tag[..tag.len().min(14)]);
        run(
            "ip",
            &[
                "link", "add", &a_dev, "type", "veth", "peer", "name", "ra", "netns", &router,
            ],
        );
        run("ip", &["addr", "add", &format!("{A}/24"), "dev", &a_dev]);
        run("ip", &["link", "set", &a_dev, "up"]);
        run_in(&router, &["ip", "addr", "add", "10.81.1.1/24", "dev", "ra"]);
        run_in(&router, &["ip", "link", "set", "ra", "up"]);
        run(
            "ip",
            &["route", "replace", "10.81.0.0/16", "via", "10.81.1.1"],
        );
        // Regions B and C: a namespace each, routed through the router.
        for (ns, side, net) in [(&b, "rb", 2), (&c, "rc", 3)] {
            run_in(
                &router,
                &[
                    "ip", "link", "add", side, "type", "veth", "peer", "name", "eth0", "netns", ns,
                ],
            );
            run_in(
                &router,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("10.81.{net}.1/24"),
                    "dev",
                    side,
                ],
            );
            run_in(&router, &["ip", "link", "set", side, "up"]);
            run_in(
                ns,
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("10.81.{net}.2/24"),
                    "dev",
                    "eth0",
                ],
            );
            run_in(ns, &["ip", "link", "set", "eth0", "up"]);
            run_in(
                ns,
                &[
                    "ip",
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("10.81.{net}.1"),
                ],
            );
        }
        run_in(&router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        // The line listens before any datagram is queued to it: with no
        // listener the kernel drops what it queues, and the test fails
        // rather than run without the delay.
        wan.line = Some(wan.start_line());
        // (nftables here lacks its `queue` statement; iptables' NFQUEUE
        // target, on the same kernel, has it.)
        run_in(
            &router,
            &[
                "iptables",
                "-A",
                "FORWARD",
                "-p",
                "udp",
                "-j",
                "NFQUEUE",
                "--queue-num",
                &QUEUE.to_string(),
            ],
        );
        // The control plane's services, for the nodes in B and C.
        for (target, field) in [(5432, 0), (4222, 1)] {
            let port = free_port(A);
            let child = Command::new("socat")
                .arg(format!("TCP-LISTEN:{port},bind={A},fork,reuseaddr"))
                .arg(format!("TCP:127.0.0.1:{target}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("socat (Debian package socat) must be installed");
            wan.forwarders.push(child);
            let at = format!("{A}:{port}");
            if field == 0 {
                wan.postgres = at;
            } else {
                wan.nats = at;
            }
        }
        // socat listens a moment after it starts.
        for at in [&wan.postgres, &wan.nats] {
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::net::TcpStream::connect(at.as_str()).is_err() {
                assert!(Instant::now() < deadline, "socat is not listening on {at}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        wan
    }

    /// How many datagrams the line has held and passed on so far.
    pub fn delayed(&self) -> u64 {
        self.delayed.load(Ordering::Relaxed)
    }

    /// The delay line: a thread in the router's namespace that accepts each
    /// queued datagram `delay` after it arrived.
    fn start_line(&self) -> std::thread::JoinHandle<()> {
        let ns = std::fs::File::open(format!("/run/netns/{}", self.router))
            .expect("the router's namespace");
        let (stop, delayed, delay) = (self.stop.clone(), self.delayed.clone(), self.delay);
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let line = std::thread::spawn(move || {
            // Only this thread enters the router's namespace; its queue
            // socket stays there.
            // SAFETY: setns on a valid namespace file descriptor changes only this thread.
            let entered = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(entered, 0, "setns: {}", std::io::Error::last_os_error());
            let mut queue = nfq::Queue::open().expect("open an NFQUEUE socket");
            queue.bind(QUEUE).expect("bind the router's queue");
            queue.set_nonblocking(true);
            ready_tx.send(()).unwrap();
            let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
            while !stop.load(Ordering::Relaxed) {
                loop {
                    match queue.recv() {
                        Ok(mut msg) => {
                            msg.set_verdict(nfq::Verdict::Accept);
                            held.push_back((Instant::now() + delay, msg));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("the delay line's queue failed: {e}"),
                    }
                }
                let now = Instant::now();
                while held.front().is_some_and(|(due, _)| *due <= now) {
                    let (_, msg) = held.pop_front().unwrap();
                    queue.verdict(msg).expect("pass a datagram on");
                    delayed.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            for (_, msg) in held {
                let _ = queue.verdict(msg);
            }
        });
        ready
            .recv_timeout(Duration::from_secs(5))
            .expect("the delay line started");
        line
    }
}

impl Drop for Wan {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(line) = self.line.take() {
            let _ = line.join();
        }
        for mut f in self.forwarders.drain(..) {
            let _ = f.kill();
            let _ = f.wait();
        }
        let a_dev = format!("{}a", &self.tag[..self.tag.len().min(14)]);
        let _ = Command::new("ip").args(["link", "del", &a_dev]).status();
        for ns in [&self.router, &self.b, &self.c] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
