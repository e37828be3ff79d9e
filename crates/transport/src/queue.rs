//! The send queue of one connection: many senders (the delivery path, the reader
//! answering keep-alive pings), one writer task.
//!
//! Not `tokio::sync::mpsc`: a tokio channel allocates its first block of 32 slots
//! (about 1.1 kB with `Bytes`) when it is created, i.e. per connection, idle or
//! not. Here an idle connection's queue is an empty `VecDeque` (no allocation);
//! memory is taken only while messages wait.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

struct State {
    items: VecDeque<Bytes>,
    senders: usize,
    receiver_alive: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the receiver (a message arrived or the last sender went away).
    ready: Notify,
    cap: usize,
}

/// Creates a queue holding at most `cap` messages.
pub fn queue(cap: usize) -> (QueueTx, QueueRx) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            receiver_alive: true,
        }),
        ready: Notify::new(),
        cap: cap.max(1),
    });
    (
        QueueTx {
            shared: shared.clone(),
        },
        QueueRx { shared },
    )
}

/// Why a message was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The queue holds `cap` messages already.
    Full(Bytes),
    /// The writer has gone.
    Closed(Bytes),
}

/// The sending side; clone it for each sender.
pub struct QueueTx {
    shared: Arc<Shared>,
}

impl Clone for QueueTx {
    fn clone(&self) -> Self {
        self.shared.state.lock().senders += 1;
        QueueTx {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for QueueTx {
    fn drop(&mut self) {
        let last = {
            let mut s = self.shared.state.lock();
            s.senders -= 1;
            s.senders == 0
        };
        if last {
            self.shared.ready.notify_one();
        }
    }
}

impl QueueTx {
    /// Queues `data` without waiting.
    pub fn try_send(&self, data: Bytes) -> Result<(), SendError> {
        {
            let mut s = self.shared.state.lock();
            if !s.receiver_alive {
                return Err(SendError::Closed(data));
            }
            if s.items.len() >= self.shared.cap {
                return Err(SendError::Full(data));
            }
            s.items.push_back(data);
        }
        self.shared.ready.notify_one();
        Ok(())
    }
}

/// The receiving side (the connection's writer).
pub struct QueueRx {
    shared: Arc<Shared>,
}

impl Drop for QueueRx {
    fn drop(&mut self) {
        let mut s = self.shared.state.lock();
        s.receiver_alive = false;
        s.items = VecDeque::new();
    }
}

impl QueueRx {
    /// The next message; `None` once every sender is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Bytes> {
        loop {
            {
                let mut s = self.shared.state.lock();
                if let Some(data) = s.items.pop_front() {
                    Self::release(&mut s);
                    return Some(data);
                }
                if s.senders == 0 {
                    return None;
                }
            }
            // `notify_one` stores a permit when nobody waits, so a message queued
            // between the check above and this wait is not missed.
            self.shared.ready.notified().await;
        }
    }

    /// The next message if one is queued.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let mut s = self.shared.state.lock();
        let data = s.items.pop_front();
        Self::release(&mut s);
        data
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.shared.state.lock().items.is_empty()
    }

    /// An emptied queue gives its buffer back (after a burst, not on every message).
    fn release(s: &mut State) {
        if s.items.is_empty() && s.items.capacity() > 64 {
            s.items = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_in_order_then_ends_when_senders_are_gone() {
        let (tx, mut rx) = queue(4);
        let tx2 = tx.clone();
        tx.try_send(Bytes::from_static(b"a")).unwrap();
        tx2.try_send(Bytes::from_static(b"b")).unwrap();
        assert!(!rx.is_empty());
        assert_eq!(rx.recv().await, Some(Bytes::from_static(b"a")));
        assert_eq!(rx.try_recv(), Some(Bytes::from_static(b"b")));
        assert_eq!(rx.try_recv(), None);
        drop(tx);
        tx2.try_send(Bytes::from_static(b"c")).unwrap();
        drop(tx2);
        // What was queued is still delivered after the last sender left.
        assert_eq!(rx.recv().await, Some(Bytes::from_static(b"c")));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn bounded_and_closed() {
        let (tx, rx) = queue(2);
        tx.try_send(Bytes::from_static(b"1")).unwrap();
        tx.try_send(Bytes::from_static(b"2")).unwrap();
        assert_eq!(
            tx.try_send(Bytes::from_static(b"3")),
            Err(SendError::Full(Bytes::from_static(b"3")))
        );
        drop(rx);
        assert_eq!(
            tx.try_send(Bytes::from_static(b"4")),
            Err(SendError::Closed(Bytes::from_static(b"4")))
        );
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken() {
        let (tx, mut rx) = queue(8);
        let writer = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(d) = rx.recv().await {
                got.push(d);
            }
            got
        });
        for i in 0..5u8 {
            tokio::task::yield_now().await;
            tx.try_send(Bytes::from(vec![i])).unwrap();
        }
        drop(tx);
        let got = writer.await.unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(got[4], Bytes::from(vec![4u8]));
    }
}
