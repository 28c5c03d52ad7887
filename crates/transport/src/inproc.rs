//! Three parties in one process, linked by channels.

use crate::channels::{Channels, Core, Event, Link};
use crate::error::TransportError;
use crate::wire::Payload;
use crate::{LinkConfig, PartyId, Peer};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Weak};
use std::time::Instant;

/// The outgoing half of an in-process link: a sender into the peer's inbound queue.
#[derive(Debug)]
struct InProcLink {
    me: PartyId,
    peer: PartyId,
    tx: Sender<Event>,
    peer_core: Weak<Core>,
}

impl Link for InProcLink {
    fn send(&self, depth: u64, payload: Payload, deliver_at: Option<Instant>) -> Result<(), TransportError> {
        // The depth travels beside the moved payload: no copy of the data.
        self.tx
            .send(Event::Data { depth, payload, deliver_at })
            .map_err(|_| TransportError::PeerClosed { peer: self.peer })
    }

    fn close(&self) {
        let _ = self.tx.send(Event::Closed);
    }

    fn wait_closed(&self, _deadline: Instant) {}

    fn abort(&self, reason: &str) -> Option<Arc<Core>> {
        // The "abort frame" of an in-process link: mark the peer failed directly; the
        // caller propagates from it afterwards.
        let core = self.peer_core.upgrade()?;
        core.mark_failed(TransportError::PeerAborted { peer: self.me, reason: reason.to_string() }).then_some(core)
    }
}

/// Three parties' [`Channels`], connected in-process, indexed by party id. Move each into
/// its own thread. Messages are moved through channels without copying.
pub fn in_process(cfg: &LinkConfig) -> [Channels; 3] {
    // Party i's inbound queue for messages arriving over link `slot` (0 next, 1 prev).
    let [(tn0, rn0), (tp0, rp0), (tn1, rn1), (tp1, rp1), (tn2, rn2), (tp2, rp2)]: [(Sender<Event>, Receiver<Event>);
        6] = std::array::from_fn(|_| channel());
    let txs = [[tn0, tp0], [tn1, tp1], [tn2, tp2]];
    let [p0, p1, p2] = PartyId::ALL;
    let cores: [Arc<Core>; 3] = PartyId::ALL.map(|p| {
        let [a, b] = &txs[p.index()];
        Arc::new(Core::new(p, [a.clone(), b.clone()]))
    });
    [(p0, [rn0, rp0]), (p1, [rn1, rp1]), (p2, [rn2, rp2])].map(|(me, inbound)| {
        let link = |to: Peer| -> Arc<dyn Link> {
            let peer = me.peer(to);
            // The peer receives our message on its link pointing back at us.
            let back = to.other();
            Arc::new(InProcLink {
                me,
                peer,
                tx: txs[peer.index()][back.slot()].clone(),
                peer_core: Arc::downgrade(&cores[peer.index()]),
            })
        };
        let links = [link(Peer::Next), link(Peer::Prev)];
        Channels::new(Arc::clone(&cores[me.index()]), links, inbound, cfg)
    })
}
