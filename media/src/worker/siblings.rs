//! What a worker knows of the others: which worker owns each ICE username
//! fragment, and a way to hand them a datagram that reached the wrong socket.
//!
//! The kernel spreads the shared port's datagrams over the workers' sockets
//! by a hash of the sender's address, not by room. So a client's first check
//! may reach a worker that does not own its connection; that worker looks the
//! ufrag up here and hands the datagram over. The owner then opens a socket
//! connected to the client, and the kernel sends it everything that client
//! sends from then on: only the first few datagrams of a connection cross
//! threads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};

use mio::Waker;
use parking_lot::Mutex;

use crate::transport::demux::{Outstanding, TransactionId};

/// How many hand-offs may wait for one worker.
pub(super) const HANDOFF_CAPACITY: usize = 1024;

/// What one worker hands another: something that reached the wrong worker.
pub(super) enum Handoff {
    /// A datagram read on the wrong worker's UDP socket.
    Datagram { from: SocketAddr, datagram: Vec<u8> },
    /// An ICE-TCP stream accepted by the wrong worker, with the bytes it
    /// read from it and has not delivered (framed).
    Stream {
        stream: std::net::TcpStream,
        remote: SocketAddr,
        pending: Vec<u8>,
    },
}

/// Which worker owns each local ufrag, shared by all of them.
#[derive(Default)]
pub(super) struct Directory(Mutex<HashMap<String, usize>>);

impl Directory {
    pub(super) fn insert(&self, ufrag: &str, worker: usize) {
        self.0.lock().insert(ufrag.to_owned(), worker);
    }

    pub(super) fn remove(&self, ufrag: &str) {
        self.0.lock().remove(ufrag);
    }

    pub(super) fn owner(&self, ufrag: &str) -> Option<usize> {
        self.0.lock().get(ufrag).copied()
    }
}

/// Which worker sent each connectivity check still awaiting its answer, so
/// an answer that reaches another worker's socket is handed over.
#[derive(Default)]
pub(super) struct Checks(Mutex<Outstanding<usize>>);

impl Checks {
    pub(super) fn insert(&self, transaction: TransactionId, worker: usize) {
        self.0.lock().insert(transaction, worker);
    }

    pub(super) fn owner(&self, transaction: &TransactionId) -> Option<usize> {
        self.0.lock().get(transaction)
    }
}

/// One worker's view of the others.
pub(super) struct Siblings {
    /// This worker's position.
    pub(super) index: usize,
    pub(super) directory: Arc<Directory>,
    /// Which worker sent each check awaiting its answer.
    pub(super) checks: Arc<Checks>,
    /// Datagrams the others handed to this worker.
    pub(super) inbox: mpsc::Receiver<Handoff>,
    /// Every worker's hand-off queue and waker, this one's included.
    pub(super) all: Vec<(mpsc::SyncSender<Handoff>, Arc<Waker>)>,
}

impl Siblings {
    /// Whether datagrams can reach another worker's socket: only with more than one.
    pub(super) fn alone(&self) -> bool {
        self.all.len() <= 1
    }

    /// Hands `datagram` to worker `to`.
    pub(super) fn hand_to(&self, to: usize, from: SocketAddr, datagram: &[u8]) {
        self.send(
            to,
            Handoff::Datagram {
                from,
                datagram: datagram.to_vec(),
            },
        );
    }

    /// Sends worker `to` a hand-off and wakes it; dropped when its queue
    /// is full (a flood of checks: ICE retransmits what matters).
    pub(super) fn send(&self, to: usize, handoff: Handoff) {
        if let Some((queue, waker)) = self.all.get(to) {
            if queue.try_send(handoff).is_ok() {
                let _ = waker.wake();
            }
        }
    }
}
